#!/usr/bin/env bash
# Set up and run the whole test suite: the README's second command and what CI runs.
# Installs the system pieces the tests need when missing (Chromium headless shell for the browser
# test, PostgreSQL for the PostgreSQL suite) and starts PostgreSQL on 127.0.0.1.
# Under CI=true a PostgreSQL or browser set-up failure fails the run (exit 1) with its log; locally it
# is reported and the affected tests show as SKIPPED (tests/skip_allowlist.txt says which may skip).
set -euo pipefail
cd "$(dirname "$0")/.."
CI_MODE=0; [ "${CI:-}" = "true" ] && CI_MODE=1
# the machine may be shared with other jobs: say how busy it is, to read slow or timed-out tests by
echo "test: load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime | sed 's/.*load averages*: //')" \
     "on $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPU cores"
setup_failed() {  # $1: what failed, $2: its log
  if [ "$CI_MODE" = 1 ]; then
    echo "test: FAIL (CI=true): $1; its log ($2):" >&2
    sed 's/^/  | /' "$2" >&2 || true
    exit 1
  fi
  echo "test: $1 (see $2); its tests will be skipped"
}
scripts/setup.sh --test
PY="${LLDMIX_VENV:-.venv}/bin/python"
export LLDMIX_HOME="${LLDMIX_HOME:-$(mktemp -d)/lldmix-home}"
LOGS=$(mktemp -d /tmp/lldmix-ci-logs.XXXXXX)

if [ -z "${LLDMIX_TEST_PG_URL:-}" ]; then
  if url=$(scripts/start_postgres.sh 2>"$LOGS/postgres.log" | tail -n 1) && [ -n "$url" ]; then
    export LLDMIX_TEST_PG_URL="$url"
  else
    setup_failed "PostgreSQL could not be started" "$LOGS/postgres.log"
  fi
fi
if [ -n "${LLDMIX_TEST_PG_URL:-}" ] && ! "$PY" -c "import sys; from lldmix_core.db.engine import make_engine; make_engine(sys.argv[1]).connect().close()" \
    "$LLDMIX_TEST_PG_URL" >"$LOGS/postgres-connect.log" 2>&1; then
  setup_failed "PostgreSQL at LLDMIX_TEST_PG_URL=$LLDMIX_TEST_PG_URL does not answer" "$LOGS/postgres-connect.log"
  unset LLDMIX_TEST_PG_URL
fi

if browser=$(scripts/install_browser.sh 2>"$LOGS/browser.log" | tail -n 1) && [ -n "$browser" ]; then
  export LLDMIX_BROWSER="$browser"
else
  setup_failed "no headless browser" "$LOGS/browser.log"
fi
exec "$PY" -m pytest -q "$@"
