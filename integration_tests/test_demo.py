"""The main job end to end: `scripts/demo.sh` reads the simulator through PyAirbyte into a DuckDB file, a second run
continues incrementally and finds nothing new, and the file and the printed answers hold the simulator's data."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from integration_tests.expectations import default_window_ids
from integration_tests.klaviyo_sim import Dataset, Sizes
from integration_tests.klaviyo_sim.data import DAY, METRICS, parse_now
from scripts.demo import SIMULATOR_NOW, SIMULATOR_SEED, TOP, revenue_per_flow_from_aggregates

ROOT = Path(__file__).resolve().parents[1]
# A small account and a month of reports: the time goes to the requests Klaviyo's rate limits space out, and the
# reports' year would take 7 requests per series report at 2 a minute. The running year's values reports, which
# the revenue answer reads, are the same either way.
SIZES = Sizes(events=2_000, profiles=300)
DEMO = ["bash", "scripts/demo.sh", *f"--events {SIZES.events} --profiles {SIZES.profiles} --report-days 30".split()]
# Streams whose records the file must hold exactly: by id, or by (list id, profile id) for memberships.
CHECKED = ("events", "profiles", "lists", "flows", "metrics", "campaign_messages", "list_memberships")
pytestmark = pytest.mark.ci_required  # like test_pyairbyte.py: PyAirbyte comes from PyPI (demo.sh installs it)


def run_demo(database: Path) -> str:
    finished = subprocess.run(
        [*DEMO, "--database", str(database)], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return finished.stdout


def records_read(output: str) -> int:
    return int(re.search(r"PyAirbyte read ([\d,]+) records", output).group(1).replace(",", ""))


def printed_rows(output: str, title: str) -> dict[str, list[float]]:
    """The rows of the table printed under the line that starts with `title`: label -> numbers."""
    table = output[output.index("\n" + title) + 1 :].split("\n\n")[0].splitlines()
    rows = {}
    for line in table[2:]:  # the title and the header left out
        if not line.strip().startswith("... "):
            label, *numbers = re.split(r"\s{2,}", line.strip())
            rows[label] = [float(number.replace(",", "")) for number in numbers]
    return rows


def assert_shows_the_largest(printed: dict[str, list[float]], expected: dict[str, list[float]]) -> None:
    """The printed rows are expected's, TOP of them (all, when fewer), those with the largest last number."""
    assert len(printed) == min(TOP, len(expected))
    assert printed == {label: pytest.approx(expected[label], abs=0.006) for label in printed}
    hidden = [numbers[-1] for label, numbers in expected.items() if label not in printed]
    assert all(value <= min(numbers[-1] for numbers in printed.values()) for value in hidden)


def stream_keys(connection: duckdb.DuckDBPyConnection, stream: str) -> list:
    column = "(list_id, profile_id)" if stream == "list_memberships" else "id"
    return [key for (key,) in connection.execute(f"select {column} from {stream}").fetchall()]


def placed_order_value_by_flow(dataset: Dataset, start: int, end: int) -> dict[str, float]:
    """The $value of the Placed Order events in [start, end) per flow id they are attributed to ("" for none)."""
    events, values = dataset.events, defaultdict(float)
    placed_order = [name for name, _, _ in METRICS].index("Placed Order")
    for index in events.by_metric[placed_order]:
        if start <= events.time(index) < end:
            flow = (events.attribution(index) or {}).get("flow") or ""
            values[flow] += events.record(index).attributes["event_properties"]["$value"]
    return values


def test_the_demo_reads_into_duckdb_then_incrementally_and_prints_the_simulators_numbers(tmp_path):
    database = tmp_path / "simulator.duckdb"
    dataset = Dataset(seed=SIMULATOR_SEED, now=parse_now(SIMULATOR_NOW), sizes=SIZES)
    expected = default_window_ids(dataset)

    def assert_the_file_holds_the_simulators_records() -> None:
        with duckdb.connect(str(database), read_only=True) as connection:
            tables = {
                name for (name,) in connection.execute("select table_name from information_schema.tables").fetchall()
            }
            assert {*expected, "events_custom_dates", "campaigns_v1", "metric_aggregates", "_airbyte_state"} <= tables
            for stream in CHECKED:
                keys = stream_keys(connection, stream)
                assert len(keys) == len(expected[stream]) and set(keys) == expected[stream], stream

    first = run_demo(database)
    assert_the_file_holds_the_simulators_records()
    second = run_demo(database)
    assert "(continuing from the state it holds)" in second and "(+0 this run)" in second
    assert records_read(second) < records_read(first), "a full read again would read as many: nothing is new"
    assert_the_file_holds_the_simulators_records()  # nothing new, and nothing twice
    assert printed_rows(second, "Events per metric") == printed_rows(first, "Events per metric")

    now = dataset.now
    today = now - now % DAY
    week = today - 7 * DAY
    events, per_day = dataset.events, defaultdict(lambda: [0] * 8)
    for index in range(events.first_at_or_after(week), events.first_at_or_after(today)):
        counts = per_day[METRICS[events.metric_of[index]][0]]
        counts[(events.time(index) - week) // DAY] += 1
        counts[7] += 1
    assert "Events per metric per day (UTC), 2026-11-24 to 2026-11-30" in second
    assert_shows_the_largest(printed_rows(second, "Events per metric"), per_day)

    # The running year of the flow values reports: from 1 January at the account's midnight (New York) to now.
    year_start = int(parse_now("2026-01-01T05:00:00Z"))
    flows = {flow.id: flow.attributes["name"] for flow in dataset.collection("flows")}
    revenue = {name: 0.0 for name in flows.values()}  # flows with activity but no order are reported at 0
    for flow, value in placed_order_value_by_flow(dataset, year_start, now).items():
        if flow:
            revenue[flows[flow]] += value
    title = "Revenue per flow, 2026-01-01 to 2026-11-30 19:00 America/New_York (flow_values_reports: Placed Order"
    assert title in second
    assert_shows_the_largest(printed_rows(second, "Revenue per flow"), {k: [v] for k, v in revenue.items()})

    members = {
        record.attributes["name"]: [len(dataset.members("lists", record.id))] for record in dataset.collection("lists")
    }
    assert_shows_the_largest(printed_rows(second, "List sizes"), members)

    # Without the reports, revenue per flow comes from the demo's metric_aggregates query: a year of months to now.
    with duckdb.connect(str(database), read_only=True) as connection:
        answer = revenue_per_flow_from_aggregates(connection)
    assert answer is not None and answer.title.startswith("Revenue per flow, 12 months from 2025-12-01 UTC")
    by_flow = placed_order_value_by_flow(dataset, int(parse_now("2025-12-01T00:00:00Z")), now)
    aggregated = {flows.get(flow, "(no flow)"): value for flow, value in by_flow.items()}
    assert {name: float(value) for name, value in answer.rows} == {
        name: pytest.approx(value, abs=0.005) for name, value in aggregated.items()
    }
