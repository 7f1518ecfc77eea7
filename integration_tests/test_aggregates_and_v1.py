"""metric_aggregates and campaigns_v1 end to end against the simulator."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Simulator, Sizes


def read(sim, folder, streams, **extra):
    config = {"api_key": FULL_ACCESS_KEY, "api_url": sim.url, **extra}
    discovered = discovered_catalog(folder, config)
    return run_connector("read", folder, config=config, catalog=configured_catalog(discovered, streams))


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def long_history():
    """Events over fifteen months, so every window of a long aggregate query holds some."""
    sizes = Sizes(campaigns=2, templates=2, lists=2, segments=2, flows=4, profiles=200, events=20_000, event_days=470)
    with Simulator(Dataset(seed=3, now=NOW, sizes=sizes)).run_in_thread() as running:
        yield running


def test_aggregate_rows_equal_the_simulators_events_over_a_range_longer_than_a_year(long_history, tmp_path):
    klaviyo_sim = long_history
    dataset = klaviyo_sim.dataset
    metric = next(m for m in dataset.metrics if m.attributes["name"] == "Placed Order")
    end = month_start(datetime.fromtimestamp(NOW, timezone.utc) + timedelta(days=32))
    start = month_start(end - timedelta(days=450))  # about fifteen months
    query = {
        "data": {
            "type": "metric-aggregate",
            "attributes": {
                "metric_id": metric.id,
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

    expected = defaultdict(lambda: {"count": 0.0, "sum_value": 0.0, "profiles": set()})
    for index in range(dataset.events.count):
        event = dataset.events.record(index)
        if event.fields["metric_id"] != metric.id or not start.timestamp() <= event.times["datetime"] < end.timestamp():
            continue
        month = month_start(datetime.fromtimestamp(event.times["datetime"], timezone.utc)).isoformat()
        cell = expected[(month, event.attributes["event_properties"].get("$attributed_flow", ""))]
        cell["count"] += 1
        cell["sum_value"] += event.attributes["event_properties"]["$value"]
        cell["profiles"].add(event.fields["profile_id"])

    rows = {(row["date"], row["dimensions"]["$attributed_flow"]): row for row in run.records()}
    assert len(rows) == len(run.records()), "each (date, dimension) once, across the windows"
    for key, cell in expected.items():
        row = rows[key]
        assert (row["count"], round(row["sum_value"], 2), row["unique"]) == (
            cell["count"],
            round(cell["sum_value"], 2),
            float(len(cell["profiles"])),
        )
    assert all(row["count"] == 0 for key, row in rows.items() if key not in expected)
    assert len({row["date"] for row in run.records()}) >= 15, "every month of the range"
    windows = [
        json.loads(body)["data"]["attributes"]["filter"][:2]
        for _, path, _, body in klaviyo_sim.log
        if path == "/api/metric-aggregates"
    ][1:]  # after the probe
    assert len(windows) == 2, "more than a year: two windows"
    assert windows[0][0] == f"greater-or-equal(datetime,{start.isoformat()})"
    assert windows[1][1] == f"less-than(datetime,{end.isoformat()})"
    assert windows[0][1].removeprefix("less-than") > windows[1][0].removeprefix("greater-or-equal"), (
        "the second window starts at the first one's last month, which the first one leaves out"
    )


def test_campaigns_v1_reads_every_campaign_through_page_and_count(klaviyo_sim, tmp_path):
    run = read(klaviyo_sim, tmp_path, ["campaigns_v1"], legacy_v1_campaigns=True)
    assert run.returncode == 0, run.errors()
    assert {record["id"] for record in run.records()} == {c.id for c in klaviyo_sim.dataset.collection("campaigns")}
    assert all(record["created"].endswith("+00:00") for record in run.records())


def test_the_retired_v1_api_gives_one_clear_error_and_never_shows_the_key(klaviyo_sim, tmp_path):
    klaviyo_sim.faults.v1_gone = True
    run = read(klaviyo_sim, tmp_path, ["campaigns_v1", "lists"], legacy_v1_campaigns=True)

    assert run.returncode == 1 and not run.records()
    (error,) = run.errors()
    assert "campaigns_email, campaigns_sms and campaigns_push" in error["message"]
    assert FULL_ACCESS_KEY not in run.text
