#!/usr/bin/env bash
# Create .venv (Python 3.10-3.13) and install the connector with its test tools.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing source-klaviyo and its test tools into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
