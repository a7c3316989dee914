#!/usr/bin/env bash
# Regenerate docs/BENCHMARKS.md (scoring and Gram benchmarks) in one command.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/report.py "$@"
