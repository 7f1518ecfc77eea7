"""The main job, end to end: read every stream into output/records.jsonl and summarise it.

    python scripts/demo.py                        # against the bundled Klaviyo simulator
    python scripts/demo.py --config secrets/config.json   # against a real Klaviyo account

With no --config, a simulator is started on a free loopback port, the
connector reads every stream from it (incrementally where it can), and the
simulator is stopped. Progress goes to the terminal as records arrive.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integration_tests.connector_cli import CONNECTOR, configured_catalog, parse_lines, run_connector  # noqa: E402
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY  # noqa: E402
from integration_tests.klaviyo_sim.data import METRICS, make_id  # noqa: E402


def revenue_by_flow(metric_id: str) -> dict:
    """The original product's example: Placed Order revenue by flow, month by month, over the last year."""
    today = time.gmtime()
    end = f"{today.tm_year}-{today.tm_mon:02d}-01T00:00:00"
    start = f"{today.tm_year - 1}-{today.tm_mon:02d}-01T00:00:00"
    attributes = {
        "metric_id": metric_id,
        "measurements": ["sum_value", "count"],
        "by": ["$attributed_flow"],
        "interval": "month",
        "timezone": "UTC",
        "filter": [f"greater-or-equal(datetime,{start})", f"less-than(datetime,{end})"],
    }
    return {"data": {"type": "metric-aggregate", "attributes": attributes}}


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_simulator(events: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "integration_tests.klaviyo_sim", "--port", str(port), "--events", str(events)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    banner = process.stdout.readline().strip()
    print(f"== {banner}")
    return process, f"http://127.0.0.1:{port}"


def read(config: dict, output: Path, folder: Path) -> None:
    discovered = run_connector("discover", folder, config=config)
    catalogs = discovered.of_type("CATALOG")
    if not catalogs:
        sys.exit(f"discover failed: {discovered.errors() or discovered.stderr[-2000:]}")
    catalog = configured_catalog(catalogs[0]["catalog"])  # every stream discover offers, as a new connection selects
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "catalog.json").write_text(json.dumps(catalog))
    modes = ", ".join(f"{s['stream']['name']} ({s['sync_mode']})" for s in catalog["streams"])
    print(f"== reading {modes}")

    counts: Counter[str] = Counter()
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    errors = []
    began = last_report = time.monotonic()
    command = [CONNECTOR, "read", "--config", str(folder / "config.json"), "--catalog", str(folder / "catalog.json")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process, output.open("w") as sink:
        for message in parse_lines(process.stdout):
            kind = message["type"]
            if kind == "RECORD":
                counts[message["record"]["stream"]] += 1
                sink.write(json.dumps(message["record"]) + "\n")
            elif kind == "TRACE" and message["trace"]["type"] == "STREAM_STATUS":
                status = message["trace"]["stream_status"]
                name, at = status["stream_descriptor"]["name"], message["trace"]["emitted_at"] / 1000
                if status["status"] == "STARTED":
                    started[name] = at
                elif status["status"] in ("COMPLETE", "INCOMPLETE"):
                    finished[name] = at
            elif kind == "TRACE" and message["trace"]["type"] == "ERROR":
                errors.append(message["trace"]["error"]["message"])
            if time.monotonic() - last_report > 2:
                last_report = time.monotonic()
                print(
                    f"   {last_report - began:5.1f}s  {sum(counts.values()):>9,} records  "
                    + "  ".join(f"{k}={v:,}" for k, v in sorted(counts.items()))
                )
    print(f"== done in {time.monotonic() - began:.1f}s; records in {output}")
    print(f"   {'stream':22} {'records':>9} {'seconds':>8}")
    for entry in catalog["streams"]:
        name = entry["stream"]["name"]
        seconds = finished.get(name, 0) - started.get(name, 0) if name in started else 0
        print(f"   {name:22} {counts[name]:>9,} {seconds:>8.2f}")
    for error in errors:
        print(f"!! {error}")
    if process.returncode:
        sys.exit(process.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="a real account's config.json; without it the simulator is used")
    parser.add_argument("--events", type=int, default=50_000, help="events the simulator holds (default 50,000)")
    parser.add_argument("--output", type=Path, default=ROOT / "output" / "records.jsonl")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        if args.config:
            read(json.loads(args.config.read_text()), args.output, Path(folder))
            return
        simulator, url = start_simulator(args.events)
        try:
            week = {"start": iso(time.time() - 8 * 86_400), "end": iso(time.time() - 86_400)}
            placed_order = make_id(1, [name for name, _, _ in METRICS].index("Placed Order"), seed=1)
            config = {
                "api_key": FULL_ACCESS_KEY,
                "api_url": url,
                "events_custom_dates": week,
                "metric_aggregates": revenue_by_flow(placed_order),
                "legacy_v1_campaigns": True,  # the simulator still serves Klaviyo's retired v1 API
            }
            read(config, args.output, Path(folder))
        finally:
            simulator.terminate()
            simulator.wait(10)
            print("== simulator stopped")


if __name__ == "__main__":
    main()
