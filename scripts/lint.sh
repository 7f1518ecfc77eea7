#!/usr/bin/env bash
# Set up (if needed) and lint: ruff's rules, ruff's formatting and mypy, as configured in pyproject.toml.
# Every check runs, so one run reports all of them; the script fails if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
status=0
.venv/bin/ruff check . || status=1
.venv/bin/ruff format --check . || status=1
.venv/bin/mypy || status=1
exit "$status"
