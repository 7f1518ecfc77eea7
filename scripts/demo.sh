#!/usr/bin/env bash
# The main job: set up (if needed), start the bundled Klaviyo simulator, read every stream through PyAirbyte into
# output/simulator.duckdb (a second run continues incrementally), print a few answers queried from it, stop the
# simulator. --config secrets/config.json reads a real Klaviyo account instead; --help lists the options.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_pyairbyte.sh
exec .venv/bin/python scripts/demo.py "$@"
