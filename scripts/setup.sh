#!/usr/bin/env bash
# Create .venv and install the connector with its test tools, exactly as locked: locks/dev.txt (every version
# pinned, every file checked against its hash, wheels only), then the package itself, editable, resolving nothing.
# The lock is for Python 3.11 (the image's), so .venv is made with python3.11 when there is one (PYTHON overrides).
# Reinstalls only when the lock or pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || echo python3)}"
python="$PYTHON"
[ -x .venv/bin/python ] && python=.venv/bin/python
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup: locks/dev.txt is for Python 3.11, and $python is $("$python" -V 2>&1):" \
    "set PYTHON to a Python 3.11 (and remove .venv if it is the one)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.installed-$(cat locks/dev.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing source-klaviyo and its test tools into .venv from locks/dev.txt" >&2
  pip=(.venv/bin/python -m pip --quiet --disable-pip-version-check)
  "${pip[@]}" install --require-hashes --only-binary :all: -r locks/dev.txt
  # setuptools, the build backend, comes from the lock too (hence no build isolation).
  "${pip[@]}" install --no-deps --no-build-isolation -e .
  rm -f .venv/.installed-* && touch "$stamp"
fi
