#!/usr/bin/env bash
# Set up (if needed) and show the connector's configuration fields and streams. Nothing is sent to Klaviyo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py
