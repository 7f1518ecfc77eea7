#!/usr/bin/env bash
# Create .venv-pyairbyte and install PyAirbyte into it from its lock (locks/pyairbyte.txt: every version pinned,
# every file checked against its hash), once, and again from scratch when the lock changes: the demo and the
# PyAirbyte tests run the connector through it. PyAirbyte gets an environment of its own because it brings many
# dependencies (its own CDK, DuckDB, pandas, cloud clients) that the connector needs none of; it runs the
# connector from .venv as a local executable. The lock is for Python 3.11 (PYAIRBYTE_PYTHON or python3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests on several workers may call this at once: the first installs, the others wait on this file's lock (where
# flock exists), then find the stamp.
if command -v flock >/dev/null; then exec 9<scripts/setup_pyairbyte.sh && flock 9; fi
lock="locks/pyairbyte.txt"
stamp=".venv-pyairbyte/.installed-$(sha256sum "$lock" | cut -c1-16)"
[ -f "$stamp" ] && exit 0
python="${PYAIRBYTE_PYTHON:-python3.11}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "setup: PyAirbyte's lock is for Python 3.11; set PYAIRBYTE_PYTHON to a Python 3.11" >&2
  exit 1
fi
echo "setup: installing PyAirbyte from $lock into .venv-pyairbyte" >&2
rm -rf .venv-pyairbyte
"$python" -m venv .venv-pyairbyte
.venv-pyairbyte/bin/python -m pip install --quiet --disable-pip-version-check \
  --require-hashes --only-binary :all: -r "$lock"
touch "$stamp"
