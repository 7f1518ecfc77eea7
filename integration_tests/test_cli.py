"""The connector's CLI, as a subprocess, against the simulator: spec, check, discover, read."""

from __future__ import annotations

import pytest
from jsonschema import Draft7Validator

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, run_connector
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, key_without
from integration_tests.klaviyo_sim.data import DAY, Dataset, iso

STREAMS = [
    "campaigns_v1",
    "campaigns_email",
    "campaigns_sms",
    "templates",
    "profiles",
    "events",
    "events_custom_dates",
    "metrics",
    "lists",
    "segments",
    "flows",
    "metric_aggregates",
]
WINDOWED = {"templates": 730, "lists": 730, "segments": 730}
CUSTOM_DATES = (NOW - 10 * DAY, NOW - 5 * DAY)
MARGIN = 600  # seconds around a window edge where the connector's own clock decides


def sim_config(sim, key: str = FULL_ACCESS_KEY, **extra):
    return {"api_key": key, "api_url": sim.url, **extra}


def expected_ids(dataset: Dataset, stream: str) -> tuple[set[str], set[str]]:
    """(ids the stream must return, ids near a window edge that it may return or not)."""
    if stream == "campaigns_v1":
        return {r.id for r in dataset.collection("campaigns")}, set()
    if stream.startswith("campaigns"):
        channel = stream.removeprefix("campaigns_")
        records = [r for r in dataset.collection("campaigns") if r.fields["messages.channel"] == channel]
        return {r.id for r in records}, set()
    if stream in ("events", "events_custom_dates", "profiles"):
        return expected_event_or_profile_ids(dataset, stream)
    records = dataset.collection(stream)
    if stream not in WINDOWED:
        return {r.id for r in records}, set()
    edge = NOW - WINDOWED[stream] * DAY
    inside = {r.id for r in records if r.times["updated"] >= edge + MARGIN}
    near = {r.id for r in records if abs(r.times["updated"] - edge) < MARGIN}
    return inside, near


def expected_event_or_profile_ids(dataset: Dataset, stream: str) -> tuple[set[str], set[str]]:
    if stream == "profiles":
        profiles, edge = dataset.profiles, NOW - 730 * DAY
        inside = {profiles.ids[i] for i in range(profiles.count) if profiles.created[i] >= edge + MARGIN}
        near = {profiles.ids[i] for i in range(profiles.count) if abs(profiles.created[i] - edge) < MARGIN}
        return inside, near
    events = dataset.events
    if stream == "events_custom_dates":  # after start, up to and including end
        low, high = events.first_at_or_after(CUSTOM_DATES[0] + 1), events.first_at_or_after(CUSTOM_DATES[1] + 1)
        return {events.record(i).id for i in range(low, high)}, set()
    edge = NOW - 30 * DAY
    inside = {events.record(i).id for i in range(events.first_at_or_after(edge + MARGIN), events.count)}
    edge_range = range(events.first_at_or_after(edge - MARGIN), events.first_at_or_after(edge + MARGIN))
    near = {events.record(i).id for i in edge_range}
    return inside, near


def aggregate_query(sim) -> dict:
    """Daily counts of one metric over the last two weeks."""
    end = NOW - NOW % DAY
    window = [f"greater-or-equal(datetime,{iso(end - 14 * DAY)})", f"less-than(datetime,{iso(end)})"]
    attributes = {"metric_id": sim.dataset.metrics[0].id, "measurements": ["count"], "filter": window}
    return {"data": {"type": "metric-aggregate", "attributes": attributes}}


def discover(sim, tmp_path, **extra):
    run = run_connector("discover", tmp_path, config=sim_config(sim, **extra))
    assert run.returncode == 0, run.stderr
    (catalog,) = [m["catalog"] for m in run.of_type("CATALOG")]
    return catalog


def test_spec_lists_every_config_field(tmp_path):
    run = run_connector("spec", tmp_path)
    (spec,) = [m["spec"] for m in run.of_type("SPEC")]
    fields = set(spec["connectionSpecification"]["properties"])
    assert {"api_key", "start_date", "revision", "backfill_window_days", "num_workers", "api_url"} <= fields


def test_check_passes_with_a_good_key(klaviyo_sim, tmp_path):
    run = run_connector("check", tmp_path, config=sim_config(klaviyo_sim))
    (status,) = [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")]
    assert status["status"] == "SUCCEEDED" and run.returncode == 0


def test_check_fails_with_a_wrong_key_and_says_so(klaviyo_sim, tmp_path):
    run = run_connector("check", tmp_path, config=sim_config(klaviyo_sim, key="pk_wrong_0123456789"))
    (status,) = [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")]
    assert status["status"] == "FAILED" and "rejected the API key" in status["message"]
    assert "pk_wrong_0123456789" not in run.text


def test_check_names_what_a_key_lacking_a_scope_cannot_read(klaviyo_sim, tmp_path):
    run = run_connector("check", tmp_path, config=sim_config(klaviyo_sim, key=key_without("flows:read")))
    (status,) = [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")]
    assert status["status"] == "SUCCEEDED"
    assert "flows needs `flows:read`" in status["message"]


def test_discover_lists_every_stream(klaviyo_sim, tmp_path):
    catalog = discover(klaviyo_sim, tmp_path)
    assert sorted(stream["name"] for stream in catalog["streams"]) == sorted(STREAMS)


@pytest.mark.parametrize("revision", ["2026-07-15", "2023-10-15"])
def test_full_refresh_read_of_every_stream_returns_the_simulators_records(klaviyo_sim, tmp_path, revision):
    catalog = discover(klaviyo_sim, tmp_path)
    custom = {"start": iso(CUSTOM_DATES[0]).replace("+00:00", "Z"), "end": iso(CUSTOM_DATES[1]).replace("+00:00", "Z")}
    run = run_connector(
        "read",
        tmp_path,
        config=sim_config(
            klaviyo_sim, revision=revision, events_custom_dates=custom, metric_aggregates=aggregate_query(klaviyo_sim)
        ),
        catalog=configured_catalog(catalog, incremental=False),
    )

    assert run.returncode == 0, run.errors()
    schemas = {stream["name"]: stream["json_schema"] for stream in catalog["streams"]}
    for stream in STREAMS:
        records = run.records(stream)
        for record in records:
            Draft7Validator(schemas[stream]).validate(record)
        if stream == "metric_aggregates":  # its rows are held to the simulator's events elsewhere
            assert records
            continue
        ids = [record["id"] for record in records]
        assert len(ids) == len(set(ids)), f"{stream}: duplicates"
        must, may = expected_ids(klaviyo_sim.dataset, stream)
        assert must <= set(ids) <= must | may, f"{stream}: {len(ids)} read, {len(must)} expected"
        assert ids, f"{stream}: the simulator holds data for every stream"


def test_incremental_read_then_a_second_read_returns_only_newer_records(klaviyo_sim, tmp_path):
    dataset = klaviyo_sim.dataset
    dataset.hold_back(60 * DAY)  # the last 60 days of changes arrive between the two reads
    streams = ["templates", "lists", "segments"]
    catalog = configured_catalog(discover(klaviyo_sim, tmp_path), streams)
    config = sim_config(klaviyo_sim)

    first = run_connector("read", tmp_path, config=config, catalog=catalog)
    assert first.returncode == 0, first.errors()
    for stream in streams:
        must, may = expected_ids(dataset, stream)
        assert must <= {r["id"] for r in first.records(stream)} <= must | may
        newest = max(r["updated"] for r in first.records(stream))
        assert first.stream_state(stream) == {"updated": newest.replace("+00:00", "Z")}

    dataset.reveal()
    second = run_connector("read", tmp_path, config=config, catalog=catalog, state=first.final_states())
    assert second.returncode == 0, second.errors()
    for stream in streams:
        cursor = first.stream_state(stream)["updated"].replace("Z", "+00:00")
        records = second.records(stream)
        assert all(record["updated"] >= cursor for record in records), "nothing older than the cursor"
        newer = {r.id for r in dataset.collection(stream) if iso(r.times["updated"]) >= cursor}
        assert {record["id"] for record in records} == newer
        assert any(iso(r.times["updated"]) > cursor for r in dataset.collection(stream)), "the hold-back hid changes"


def test_read_stops_before_any_data_when_the_key_lacks_a_selected_streams_scope(klaviyo_sim, tmp_path):
    catalog = configured_catalog(discover(klaviyo_sim, tmp_path), ["lists", "metrics"])
    run = run_connector(
        "read", tmp_path, config=sim_config(klaviyo_sim, key=key_without("lists:read")), catalog=catalog
    )

    assert run.returncode == 1
    assert not run.records()
    (error,) = run.errors()
    assert error["failure_type"] == "config_error" and "lists needs `lists:read`" in error["message"]


def test_start_date_bounds_the_read(klaviyo_sim, tmp_path):
    start = NOW - 100 * DAY
    config = sim_config(klaviyo_sim, start_date=iso(start).replace("+00:00", "Z"))
    catalog = configured_catalog(discover(klaviyo_sim, tmp_path), ["lists", "flows"])
    run = run_connector("read", tmp_path, config=config, catalog=catalog)

    assert run.returncode == 0, run.errors()
    for stream in ("lists", "flows"):
        expected = {r.id for r in klaviyo_sim.dataset.collection(stream) if r.times["updated"] >= start}
        assert {record["id"] for record in run.records(stream)} == expected
