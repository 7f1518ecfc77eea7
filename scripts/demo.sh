#!/usr/bin/env bash
# The main job: set up (if needed), start the bundled Klaviyo simulator, read every stream
# into output/records.jsonl with progress and a per-stream summary, stop the simulator.
# Pass --config secrets/config.json to read a real Klaviyo account instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
