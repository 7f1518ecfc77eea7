"""metric_aggregates (fixed and rolling ranges, incremental) and campaigns_v1 end to end against the simulator."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from integration_tests.conftest import NOW
from integration_tests.connector_cli import Run, configured_catalog, discovered_catalog, run_connector
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Simulator, Sizes

SEED_FLOW_FILTER = 'not(equals($attributed_flow,""))'


def read(sim, folder, streams, state=None, **extra):
    config = {"api_key": FULL_ACCESS_KEY, "api_url": sim.url, **extra}
    discovered = discovered_catalog(folder, config)
    return run_connector("read", folder, config=config, catalog=configured_catalog(discovered, streams), state=state)


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def placed_order(dataset: Dataset) -> str:
    return next(m.id for m in dataset.metrics if m.attributes["name"] == "Placed Order")


def expected_cells(dataset: Dataset, metric_id: str, start: datetime, end: datetime, bucket, skip_no_flow=False):
    """{(interval start, flow): {count, sum_value, profiles}} counted from the simulator's events, the way
    Klaviyo's aggregates should come out; `skip_no_flow` applies the seed's not(equals($attributed_flow,""))."""
    cells = defaultdict(lambda: {"count": 0.0, "sum_value": 0.0, "profiles": set()})
    for index in range(dataset.events.count):
        event = dataset.events.record(index)
        at = event.times["datetime"]
        if event.fields["metric_id"] != metric_id or not start.timestamp() <= at < end.timestamp():
            continue
        properties = event.attributes["event_properties"]
        flow = properties.get("$attributed_flow", "")
        if skip_no_flow and not flow:
            continue
        cell = cells[(bucket(datetime.fromtimestamp(at, start.tzinfo)).isoformat(), flow)]
        cell["count"] += 1
        cell["sum_value"] += properties["$value"]
        cell["profiles"].add(event.fields["profile_id"])
    return cells


def assert_rows_equal_cells(rows: dict, cells: dict) -> None:
    for key, cell in cells.items():
        assert (rows[key]["count"], round(rows[key]["sum_value"], 2)) == (cell["count"], round(cell["sum_value"], 2))
    assert all(row["count"] == 0 for key, row in rows.items() if key not in cells)


def aggregate_windows(sim, after: int = 0) -> list[list[str]]:
    """The datetime terms of the aggregate requests logged from position `after` on, the probe left out."""
    bodies = [json.loads(body) for _, path, _, body in list(sim.log)[after:] if path == "/api/metric-aggregates"]
    return [body["data"]["attributes"]["filter"][:2] for body in bodies][1:]


def rows_by_cell(run: Run) -> dict:
    rows = {(row["date"], row["dimensions"]["$attributed_flow"]): row for row in run.records()}
    assert len(rows) == len(run.records()), "each (date, dimension) once"
    return rows


@pytest.fixture
def long_history():
    """Events over fifteen months, so every window of a long aggregate query holds some."""
    sizes = Sizes(campaigns=2, templates=2, lists=2, segments=2, flows=4, profiles=200, events=20_000, event_days=470)
    with Simulator(Dataset(seed=3, now=NOW, sizes=sizes)).run_in_thread() as running:
        yield running


@pytest.fixture
def busy_month():
    """Hundreds of events a day over a month, so every day of a rolling query holds orders credited to flows."""
    sizes = Sizes(campaigns=2, templates=2, lists=2, segments=2, flows=4, profiles=200, events=20_000, event_days=30)
    with Simulator(Dataset(seed=5, now=NOW, sizes=sizes)).run_in_thread() as running:
        yield running


def test_aggregate_rows_equal_the_simulators_events_over_a_range_longer_than_a_year(long_history, tmp_path):
    klaviyo_sim = long_history
    dataset = klaviyo_sim.dataset
    metric_id = placed_order(dataset)
    end = month_start(datetime.fromtimestamp(NOW, timezone.utc) + timedelta(days=32))
    start = month_start(end - timedelta(days=450))  # about fifteen months
    query = {
        "data": {
            "type": "metric-aggregate",
            "attributes": {
                "metric_id": metric_id,
                "measurements": ["count", "sum_value", "unique"],
                "by": ["$attributed_flow"],
                "interval": "month",
                "timezone": "UTC",
                "filter": [
                    f"greater-or-equal(datetime,{start:%Y-%m-%dT%H:%M:%S})",
                    f"less-than(datetime,{end:%Y-%m-%dT%H:%M:%S})",
                ],
            },
        }
    }
    run = read(klaviyo_sim, tmp_path, ["metric_aggregates"], metric_aggregates=query)
    assert run.returncode == 0, run.errors()

    expected = expected_cells(dataset, metric_id, start, end, month_start)
    rows = rows_by_cell(run)
    assert_rows_equal_cells(rows, expected)
    assert all(rows[key]["unique"] == float(len(cell["profiles"])) for key, cell in expected.items())
    assert len({row["date"] for row in run.records()}) >= 15, "every month of the range"
    windows = aggregate_windows(klaviyo_sim)
    assert len(windows) == 2, "more than a year: two windows"
    assert windows[0][0] == f"greater-or-equal(datetime,{start.isoformat()})"
    assert windows[1][1] == f"less-than(datetime,{end.isoformat()})"
    assert windows[0][1].removeprefix("less-than") > windows[1][0].removeprefix("greater-or-equal"), (
        "the second window starts at the first one's last month, which the first one leaves out"
    )


def test_the_seed_query_drops_events_no_flow_is_credited_with(klaviyo_sim, tmp_path):
    """The original config's query, its not(equals($attributed_flow,"")) next to the datetime terms."""
    dataset = klaviyo_sim.dataset
    end = day_start(datetime.fromtimestamp(NOW, timezone.utc))
    start = end - timedelta(days=30)
    filters = [f"greater-or-equal(datetime,{start:%Y-%m-%dT%H:%M:%S})", f"less-than(datetime,{end:%Y-%m-%dT%H:%M:%S})"]
    attributes = {
        "metric_id": placed_order(dataset),
        "measurements": ["sum_value", "count"],
        "by": ["$attributed_flow"],
    }
    query = {"type": "metric-aggregate", "attributes": {**attributes, "interval": "day", "timezone": "UTC"}}
    query["attributes"]["filter"] = [*filters, SEED_FLOW_FILTER]
    run = read(klaviyo_sim, tmp_path, ["metric_aggregates"], metric_aggregates={"data": query})
    assert run.returncode == 0, run.errors()

    rows = rows_by_cell(run)
    assert_rows_equal_cells(rows, expected_cells(dataset, placed_order(dataset), start, end, day_start, True))
    assert rows and all(flow for _, flow in rows), "no row for events without a flow"
    assert any(not flow for _, flow in expected_cells(dataset, placed_order(dataset), start, end, day_start)), (
        "the range holds events without a flow, which the filter dropped"
    )


def test_a_rolling_query_read_twice_rereads_only_its_last_days_with_the_same_ids(busy_month, tmp_path):
    klaviyo_sim = busy_month
    dataset = klaviyo_sim.dataset
    zone = ZoneInfo("America/New_York")
    attributes = {
        "metric_id": placed_order(dataset),
        "measurements": ["sum_value", "count"],
        "by": ["$attributed_flow"],
    }
    data = {"type": "metric-aggregate", "attributes": {**attributes, "interval": "day", "timezone": zone.key}}
    data["attributes"]["filter"] = [SEED_FLOW_FILTER]
    query = {"name": "flow_orders", "days_back": 20, "reread_intervals": 2, "data": data}
    today = datetime.fromtimestamp(NOW, zone).date()
    start, yesterday, midnight, end = (
        datetime.combine(today + timedelta(days=days), datetime.min.time(), tzinfo=zone) for days in (-20, -1, 0, 1)
    )

    first = read(klaviyo_sim, tmp_path, ["metric_aggregates"], metric_aggregates=query)
    assert first.returncode == 0, first.errors()
    assert aggregate_windows(klaviyo_sim) == [
        [f"greater-or-equal(datetime,{start.isoformat()})", f"less-than(datetime,{end.isoformat()})"]
    ]
    logged = len(klaviyo_sim.log)
    second = read(klaviyo_sim, tmp_path, ["metric_aggregates"], first.final_states(), metric_aggregates=query)
    assert second.returncode == 0, second.errors()

    assert aggregate_windows(klaviyo_sim, logged) == [
        [f"greater-or-equal(datetime,{yesterday.isoformat()})", f"less-than(datetime,{end.isoformat()})"]
    ], "the second sync reads the last two days only"
    first_rows, second_rows = rows_by_cell(first), rows_by_cell(second)
    assert {date for date, _ in second_rows} == {yesterday.isoformat(), midnight.isoformat()}
    assert all(row["id"] == first_rows[key]["id"] for key, row in second_rows.items()), "same cells, same ids"
    cells = expected_cells(dataset, placed_order(dataset), start, end, day_start, True)
    assert_rows_equal_cells(first_rows, cells)
    assert_rows_equal_cells(second_rows, {key: cell for key, cell in cells.items() if key[0] >= yesterday.isoformat()})
    assert second.stream_state("metric_aggregates") == {
        "states": [
            {
                "partition": {"query_name": "flow_orders"},
                "cursor": {"date": f"{midnight.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"},
            }
        ]
    }


def test_campaigns_v1_reads_every_campaign_through_page_and_count(klaviyo_sim, tmp_path):
    run = read(klaviyo_sim, tmp_path, ["campaigns_v1"], legacy_v1_campaigns=True)
    assert run.returncode == 0, run.errors()
    assert {record["id"] for record in run.records()} == {c.id for c in klaviyo_sim.dataset.collection("campaigns")}
    assert all(record["created"].endswith("+00:00") for record in run.records())


def test_the_retired_v1_api_gives_one_clear_error_and_never_shows_the_key(klaviyo_sim, tmp_path):
    klaviyo_sim.faults.v1_gone = True
    run = read(klaviyo_sim, tmp_path, ["campaigns_v1", "lists"], legacy_v1_campaigns=True)

    assert run.returncode == 1 and run.records("lists") and not run.records("campaigns_v1"), "lists are read"
    (error,) = run.errors()
    assert "campaigns_email, campaigns_sms and campaigns_push" in error["message"]
    assert FULL_ACCESS_KEY not in run.text
