#!/usr/bin/env bash
# Set up (if needed) and run every test (unit, simulator, CLI end to end, image, PyAirbyte), or the ones the
# arguments select (pytest's own). Most tests wait on the simulator and on rate limits rather than on the CPU, so
# they run on several workers (pytest-xdist, TEST_WORKERS, 6 by default, each taking the next test as it frees:
# worksteal) at a lower priority; the tests marked
# `realtime`, which hold the connector to Klaviyo's rate limits on the clock, run beside them at full priority, so
# that a busy core cannot bunch their requests into one of Klaviyo's windows. Exits non-zero on a failure, or when
# no test ran at all (pytest's 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
realtime_log="$(mktemp)"
trap 'rm -f "$realtime_log"' EXIT
.venv/bin/python -m pytest -m realtime "$@" >"$realtime_log" 2>&1 &
realtime_pid=$!
others=0
nice -n 10 .venv/bin/python -m pytest -m "not realtime" -n "${TEST_WORKERS:-6}" --dist worksteal "$@" || others=$?
realtime=0
wait "$realtime_pid" || realtime=$?
echo "=== tests marked realtime (run at full priority beside the others) ==="
cat "$realtime_log"
# 5 is "no test collected": fine for one of the two runs, a failure for both.
if [ "$others" -eq 5 ] && [ "$realtime" -eq 5 ]; then exit 5; fi
for status in "$others" "$realtime"; do
  if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then exit "$status"; fi
done
