"""Where the connector's CPU goes on an events read: a py-spy profile, summarised.

    pip install py-spy   # not a dependency of the connector; any environment on PATH will do
    .venv/bin/python bench/profile.py                     # 300,000 events at 50 ms, the top 10
    .venv/bin/python bench/profile.py events:300000:50 15

Runs `source-klaviyo read` under `py-spy record --gil` (samples only while a thread holds the
GIL: the CPU the interpreter spends) against the simulator, as bench/benchmark.py does, and
prints the functions with the most samples of their own ("self") and the most samples
anywhere on their stack ("inclusive"), as shares of all samples.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchmark import simulator  # noqa: E402
from integration_tests.connector_cli import CONNECTOR, configured_catalog, discovered_catalog  # noqa: E402
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY  # noqa: E402

# "qualname (path/to/file.py:123)" -> "qualname (file.py)": lines of one function count together.
FRAME = re.compile(r"^(?P<name>.*) \((?:.*/)?(?P<file>[^/:]+)(?::\d+)?\)$")


def function(frame: str) -> str:
    match = FRAME.match(frame)
    return f"{match['name']} ({match['file']})" if match else frame


def summarise(collapsed: str, top: int) -> str:
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [function(frame) for frame in stack.split(";")]
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for name in set(frames):
            anywhere[name] += samples
    lines = [f"{total:,} samples"]
    for title, counter in (("self", own), ("inclusive", anywhere)):
        lines += ["", f"| {title} | function |", "|---|---|"]
        lines += [f"| {count / total:.1%} | `{name}` |" for name, count in counter.most_common(top)]
    return "\n".join(lines)


def main(scenario: str = "events:300000:50", top: str = "10") -> None:
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not on PATH: pip install py-spy")
    stream, size, latency = scenario.split(":")
    sim, url = simulator(stream, int(size), int(latency))
    try:
        folder = Path(tempfile.mkdtemp())
        config = {"api_key": FULL_ACCESS_KEY, "api_url": url}
        (folder / "config.json").write_text(json.dumps(config))
        catalog = configured_catalog(discovered_catalog(folder, config), [stream])
        (folder / "catalog.json").write_text(json.dumps(catalog))
        profile = folder / "profile.txt"
        files = ["--config", str(folder / "config.json"), "--catalog", str(folder / "catalog.json")]
        command = [CONNECTOR, "read", *files]
        record = [spy, "record", "--gil", "--rate", "200", "--format", "raw", "-o", str(profile), "--", *command]
        subprocess.run(record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        print(summarise(profile.read_text(), int(top)))
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    main(*sys.argv[1:])
