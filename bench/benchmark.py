"""Throughput of `source-klaviyo read` against the local simulator.

    .venv/bin/python bench/benchmark.py                 # the README's table
    .venv/bin/python bench/benchmark.py --repeats=1 events:100000:50 profiles:50000:0

Each scenario is stream:records:latency_ms. The simulator runs in its own
process with Klaviyo's real rate limits and every event rendered before it
serves (`--prerender`: a page costs it about 3 ms of CPU, not 45, so the
connector sets the pace). The connector runs as the CLI does, its stdout read
(and counted) here, `--repeats` times (default 3) against the same simulator.
Measured per read: wall time, records/s, CPU of the connector process (user +
sys, from wait4, including the ~1.2 s the interpreter and the CDK take to
start), CPU microseconds per record, peak RSS; reported as medians, with the
range of CPU per record; requests and 429s the simulator answered per read;
then, for each stream and latency read at two sizes, the marginal CPU per record.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integration_tests.connector_cli import CONNECTOR, configured_catalog, discovered_catalog  # noqa: E402
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY  # noqa: E402

DEFAULT_SCENARIOS = [
    "events:100000:50",
    "events:1000000:50",
    "events:3000000:50",
    "profiles:10000:50",
    "profiles:100000:50",
]
# This machine's CPU time for the same read varies by 15% or more from run to run: report medians.
DEFAULT_REPEATS = 3


@dataclass
class Result:
    """One scenario read `repeats` times against one simulator; figures are medians over the reads."""

    scenario: str
    records: int
    walls: list[float]
    cpus: list[float]
    peak_rss_mbs: list[float]
    requests: int
    throttled: int

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    def row(self) -> str:
        stream, size, latency = self.scenario.split(":")
        per_record = [cpu / max(1, self.records) * 1e6 for cpu in self.cpus]
        spread = f" ({min(per_record):.0f}-{max(per_record):.0f})" if len(per_record) > 1 else ""
        cells = [
            stream,
            f"{int(size):,}",
            f"{latency} ms",
            f"{self.records:,}",
            f"{self.wall:.1f}",
            f"{self.records / self.wall:,.0f}",
            f"{self.cpu:.1f}",
            f"{statistics.median(per_record):.0f}{spread}",
            f"{statistics.median(self.peak_rss_mbs):.0f}",
            f"{self.requests:,}",
            str(self.throttled),
        ]
        return "| " + " | ".join(cells) + " |"


COLUMNS = [
    "stream",
    "in simulator",
    "latency",
    "records read",
    "wall s",
    "records/s",
    "connector CPU s",
    "CPU µs/record (range)",
    "peak RSS MB",
    "requests",
    "429s",
]
HEADER = "| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|"


def simulator(stream: str, size: int, latency: int) -> tuple[subprocess.Popen, str]:
    sizes = (
        ["--events", str(size), "--event-days", "28"]
        if stream == "events"
        else ["--profiles", str(size), "--events", "1000", "--history-days", "700"]
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "integration_tests.klaviyo_sim",
            "--port",
            "0",
            "--latency-ms",
            str(latency),
            "--prerender",
            *sizes,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    banner = process.stdout.readline()
    url = banner.split(" on ", 1)[1].split(" ", 1)[0]
    return process, url


def run(scenario: str, folder: Path, repeats: int) -> Result:
    stream, size, latency = scenario.split(":")
    sim, url = simulator(stream, int(size), int(latency))
    try:
        config = {"api_key": FULL_ACCESS_KEY, "api_url": url}
        discovered = discovered_catalog(folder, config)
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "catalog.json").write_text(json.dumps(configured_catalog(discovered, [stream])))
        before = json.loads(urllib.request.urlopen(f"{url}/__sim/stats").read())
        walls, cpus, peaks, counts = [], [], [], set()
        for _ in range(repeats):
            started = time.monotonic()
            connector = subprocess.Popen(
                [CONNECTOR, "read", "--config", str(folder / "config.json"), "--catalog", str(folder / "catalog.json")],
                stdout=subprocess.PIPE,
            )
            counts.add(sum(1 for line in connector.stdout if line.startswith(b'{"type":"RECORD"')))
            _, status, usage = os.wait4(connector.pid, 0)
            walls.append(time.monotonic() - started)
            if status:
                raise RuntimeError(f"{scenario}: the connector exited with status {status}")
            cpus.append(usage.ru_utime + usage.ru_stime)
            peaks.append(usage.ru_maxrss / 1024)
        if len(counts) != 1:
            raise RuntimeError(f"{scenario}: the reads printed different numbers of records: {sorted(counts)}")
        stats = json.loads(urllib.request.urlopen(f"{url}/__sim/stats").read())
        requests = (stats["requests"] - before["requests"]) // repeats
        throttled = (stats.get("throttled", 0) - before.get("throttled", 0)) // repeats
        return Result(scenario, counts.pop(), walls, cpus, peaks, requests, throttled)
    finally:
        sim.terminate()
        sim.wait(10)


def marginal(results: list[Result]) -> list[str]:
    """CPU µs per record once started: the CPU between the smallest and the largest read of each stream
    and latency, over the records between them (start-up, the same in both, cancels out)."""
    lines = []
    for stream, latency in dict.fromkeys((r.scenario.split(":")[0], r.scenario.split(":")[2]) for r in results):
        runs = sorted((r for r in results if r.scenario.split(":")[::2] == [stream, latency]), key=lambda r: r.records)
        small, large = runs[0], runs[-1]
        if large.records > small.records:
            per_record = (large.cpu - small.cpu) / (large.records - small.records) * 1e6
            lines.append(
                f"- {stream} at {latency} ms: {per_record:.1f} µs of CPU per record once started "
                f"({small.records:,} and {large.records:,} records)"
            )
    return lines


def main(arguments: list[str]) -> None:
    repeats = int(next((a.split("=", 1)[1] for a in arguments if a.startswith("--repeats=")), DEFAULT_REPEATS))
    scenarios = [a for a in arguments if not a.startswith("--repeats=")] or DEFAULT_SCENARIOS
    wrong = [s for s in scenarios if len(s.split(":")) != 3 or not all(p.isdigit() for p in s.split(":")[1:])]
    if wrong or repeats < 1:
        sys.exit(
            "usage: benchmark.py [--repeats=N] [stream:records:latency_ms ...], e.g. events:100000:50 "
            f"(not {' '.join(wrong) or f'--repeats={repeats}'})"
        )
    print(HEADER, flush=True)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for scenario in scenarios:
            results.append(run(scenario, Path(folder), repeats))
            print(results[-1].row(), flush=True)
    print("\n".join(["", *marginal(results)]))


if __name__ == "__main__":
    main(sys.argv[1:])
