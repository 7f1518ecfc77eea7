"""Run the reliability tests and write their matrix to docs/RELIABILITY.md.

    .venv/bin/python scripts/reliability.py [extra pytest arguments]

The tests run on four pytest-xdist workers (they mostly wait on rate limits); `-n 1` runs them in one
process. Each test records what it saw (scenario, expected, result, record counts) through the
`reliability_report` fixture; pytest's JUnit report gives each row its verdict. Exits with
pytest's status, so a failing scenario is both in the document and in the exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "RELIABILITY.md"
SECTIONS = {
    "test_reliability": (
        "Faults",
        "Every stream read with all history opened, from a simulator that misbehaves as named, from the first "
        "request or switched on in the middle of the read (at a request drawn at random); the "
        "emitted ids are compared with the simulator's own. metric_aggregates rows are compared with a "
        "fault-free read of the same query, and are not counted in the record columns (their ids are hashes). "
        "An outage that never ends must end each stream it stopped with one transient error, after everything "
        "that completed, and the next sync must resume and complete.",
    ),
    "test_kill_resume": (
        "Kill and resume",
        "Incremental reads killed with SIGKILL, or stopped with SIGTERM as Airbyte stops a source, after a number "
        "of records, each resumed from the last STATE printed. A record counts as delivered once a STATE printed "
        "after it covers it (its cursor value lies in a finished window of that STATE); it was in flight if the "
        "kill came first. Duplicates must be "
        "records in flight at a kill (or, for a stream that had finished before the kill, records its next "
        "sync reads again from its newest record and lookback). The first row is the measure of the issue: "
        "every attempt dies after 40% of what a whole sync prints; hypothesis draws the event and profile rows' "
        "data, workers and kill points anew on every run. The per-parent streams are killed at random points (the "
        "seed is in the row) and must not read again in full a parent an interrupted attempt finished. An attempt "
        "stopped by SIGTERM must exit with 143 within 10 s, print whole lines only and end with a STATE and one "
        "TRACE saying it was stopped, whether its reader keeps up or stalls past the connector's 3 s grace.",
    ),
    "test_bad_input": ("Bad input", "Configs fuzzed with hypothesis, broken input files, unusable state."),
    "test_secrets": (
        "Secrets",
        "Every command run with a recognisable key (spec, check, discover, read; with and without --debug; under "
        "faults, with rejected keys, through the v1 API that carries the key in its URL); stdout and stderr "
        "scanned for the key and for recognisable pieces of it.",
    ),
}
COUNTS = ("records_expected", "records_emitted", "missing", "duplicates")


def main(pytest_args: list[str]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        rows_folder, junit_file = Path(folder) / "rows", Path(folder) / "junit.xml"
        rows_folder.mkdir()
        tests = [str(ROOT / "integration_tests" / f"{module}.py") for module in SECTIONS]
        started = time.monotonic()
        status = subprocess.call(
            [sys.executable, "-m", "pytest", *tests, "-q", "-n", "4", f"--junitxml={junit_file}", *pytest_args],
            cwd=ROOT,
            env={**os.environ, "RELIABILITY_RESULTS": str(rows_folder)},
        )
        minutes = (time.monotonic() - started) / 60
        rows = [row for path in sorted(rows_folder.glob("*.json")) for row in json.loads(path.read_text())]
        if not rows:
            print("reliability: the tests recorded nothing", file=sys.stderr)
            return status or 1
        rows.sort(key=lambda row: row["test"])
        verdicts = _verdicts(junit_file)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(render(rows, verdicts, minutes))
    print(f"reliability: wrote {OUTPUT.relative_to(ROOT)} ({len(rows)} rows)", file=sys.stderr)
    return status


def _verdicts(junit_file: Path) -> dict[str, str]:
    """pytest node id -> pass, FAIL or skipped."""
    verdicts = {}
    for case in ElementTree.parse(junit_file).iter("testcase"):
        node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        outcome = "pass"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "FAIL"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        verdicts[node] = outcome
    return verdicts


def render(rows: list[dict], verdicts: dict[str, str], minutes: float) -> str:
    latest = {(row["test"], row["scenario"]): row for row in rows}  # hypothesis may replay an example
    outcomes = [verdicts.get(row["test"], "FAIL") for row in latest.values()]
    lines = [
        "# Reliability matrix",
        "",
        f"Produced by `.venv/bin/python scripts/reliability.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"in {minutes:.0f} min, against the bundled Klaviyo simulator: {outcomes.count('pass')} of "
        f"{len(outcomes)} scenarios pass. Do not edit by hand; rerun the script.",
        "",
    ]
    for module, (title, intro) in SECTIONS.items():
        section = [row for row in latest.values() if f"/{module}.py::" in row["test"]]
        if not section:
            continue
        counted = [name for name in COUNTS if any(row.get(name) is not None for row in section)]
        header = ["Scenario", "Expected", "Result", *(name.replace("_", " ").capitalize() for name in counted)]
        lines += [f"## {title}", "", intro, "", _row([*header, "Verdict"]), _row(["---"] * (len(header) + 1))]
        for row in section:
            result = row["result"]
            if row.get("faults_seen"):
                result += " (" + ", ".join(f"{count} {kind}" for kind, count in row["faults_seen"].items()) + ")"
            cells = [row["scenario"], row["expected"], result, *(row.get(name) for name in counted)]
            lines.append(_row([*cells, verdicts.get(row["test"], "FAIL")]))
        lines.append("")
    return "\n".join(lines)


def _row(cells: list) -> str:
    text = ["–" if cell is None else str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells]
    return "| " + " | ".join(text) + " |"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
