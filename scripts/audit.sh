#!/usr/bin/env bash
# Audit the pinned dependencies (constraints.txt) for known vulnerabilities with pip-audit.
# Needs the PyPI JSON API or api.osv.dev; a package it cannot look up is listed as "not audited",
# and the script fails when that happens, so an offline run is never mistaken for a clean one.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pip-audit ] || .venv/bin/pip install -q -c constraints.txt "pip-audit>=2.7"
out=$(mktemp)
# torch's CPU wheel (+cpu local version) is not on PyPI under that name; audit the release itself
sed 's/^torch==\([0-9.]*\).*/torch==\1/' constraints.txt > "$out.req"
set +e
.venv/bin/pip-audit -r "$out.req" --progress-spinner off "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
skipped=$(grep -c "could not be audited" "$out" || true)
echo "audit: $(grep -c '==' "$out.req") pinned packages, $skipped not audited, pip-audit exit $rc"
[ "$skipped" -eq 0 ] || { echo "audit: incomplete (no vulnerability service reachable?); offline: python scripts/audit_offline.py <checkout of github.com/pypa/advisory-database>"; exit 3; }
exit "$rc"
