#!/usr/bin/env bash
# The one install script (README, CI and the Dockerfile all call it).
# Creates .venv when missing and installs lldmix with the exact versions in constraints.txt.
#   scripts/setup.sh          runtime install
#   scripts/setup.sh --test   plus the test tools (pytest, hypothesis, playwright, psycopg)
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
PY="${PYTHON:-python3}"
VENV="${LLDMIX_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.lldmix-install-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)${extras:+-test}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing lldmix$extras (pinned by constraints.txt; takes a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".$extras"
  if [ -n "$extras" ]; then
    # the recipe export tests read MosaicML Streaming datasets; its metadata caps numpy<2.2 and
    # transformers<5 (it runs with ours: tests/test_recipes_exports.py), so its imports come from
    # the test extra and the package itself without dependencies
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt mosaicml-streaming
  fi
  touch "$stamp"
fi
echo "setup: ready ($VENV/bin/lldmix)"
