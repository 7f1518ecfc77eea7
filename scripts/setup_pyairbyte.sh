#!/usr/bin/env bash
# Create .venv-pyairbyte and install PyAirbyte into it, once: the demo and the PyAirbyte tests run the connector
# through it. PyAirbyte gets an environment of its own because it brings many dependencies (its own CDK, DuckDB,
# pandas, cloud clients) that the connector needs none of; it runs the connector from .venv as a local executable.
# PyAirbyte is pinned so the demo's database and the tests' expectations do not move under a new release; it
# supports Python 3.10-3.12 (PYAIRBYTE_PYTHON picks one; otherwise the newest of those on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests on several workers may call this at once: the first installs, the others wait on this file's lock (where
# flock exists), then find the stamp.
if command -v flock >/dev/null; then exec 9<scripts/setup_pyairbyte.sh && flock 9; fi
requirement="airbyte==0.71.3"
stamp=".venv-pyairbyte/.installed-$(echo "$requirement" | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
for candidate in "${PYAIRBYTE_PYTHON:-}" python3.12 python3.11 python3.10 python3; do
  if [ -n "$candidate" ] &&
    "$candidate" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; then
    echo "setup: installing $requirement into .venv-pyairbyte" >&2
    [ -x .venv-pyairbyte/bin/python ] || "$candidate" -m venv .venv-pyairbyte
    .venv-pyairbyte/bin/python -m pip install --quiet --disable-pip-version-check "$requirement"
    rm -f .venv-pyairbyte/.installed-* && touch "$stamp"
    exit 0
  fi
done
echo "setup: PyAirbyte needs Python 3.10-3.12; set PYAIRBYTE_PYTHON to one" >&2
exit 1
