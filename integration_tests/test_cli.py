"""The connector's CLI, as a subprocess, against the simulator: spec, check, discover, read."""

from __future__ import annotations

import pytest
from jsonschema import Draft7Validator

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, run_connector
from integration_tests.expectations import REPORT_DAYS, REPORTS, default_window_ids, key, report_ids, utc
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, key_without
from integration_tests.klaviyo_sim.data import DAY, Dataset, iso
from source_klaviyo.streams import STREAM_CLASSES

STREAMS = [stream_class.name for stream_class in STREAM_CLASSES]
# What revision 2023-10-15 does not have.
NOT_IN_2023 = {"campaigns_push", "forms", *REPORTS}
CUSTOM_DATES = (NOW - 10 * DAY, NOW - 5 * DAY)


def sim_config(sim, key: str = FULL_ACCESS_KEY, **extra):
    return {"api_key": key, "api_url": sim.url, **extra}


def everything(sim, **extra):
    """A config under which every stream is offered: the custom dates, a query and the v1 opt-in set."""
    custom = {"start": utc(CUSTOM_DATES[0]), "end": utc(CUSTOM_DATES[1])}
    reports = {"backfill_window_days": dict.fromkeys(REPORTS, REPORT_DAYS)}  # a request a report, not a year's
    return sim_config(
        sim,
        events_custom_dates=custom,
        metric_aggregates=aggregate_query(sim),
        legacy_v1_campaigns=True,
        **reports,
        **extra,
    )


def expected_ids(dataset: Dataset, revision: str = "2026-07-15") -> dict[str, set[str]]:
    """Ids per stream under `everything`: each stream's default window, the custom range, every v1 campaign.
    Revision 2023-10-15 has no push campaigns, so no push campaign's messages either."""
    events = dataset.events
    custom = range(events.first_at_or_after(CUSTOM_DATES[0] + 1), events.first_at_or_after(CUSTOM_DATES[1] + 1))
    expected = {
        **default_window_ids(dataset),
        "campaigns_v1": {c.id for c in dataset.collection("campaigns")},
        "events_custom_dates": {events.record(i).id for i in custom},
        **report_ids(dataset, REPORT_DAYS),
    }
    if revision == "2023-10-15":
        push = {c.id for c in dataset.collection("campaigns") if c.fields["messages.channel"] == "mobile_push"}
        expected["campaign_messages"] = {
            m.id for m in dataset.collection("campaign-messages") if m.fields["campaign.id"] not in push
        }
    return expected


def aggregate_query(sim) -> dict:
    """Daily counts of one metric over the last two weeks."""
    end = NOW - NOW % DAY
    window = [f"greater-or-equal(datetime,{iso(end - 14 * DAY)})", f"less-than(datetime,{iso(end)})"]
    attributes = {"metric_id": sim.dataset.metrics[0].id, "measurements": ["count"], "filter": window}
    return {"data": {"type": "metric-aggregate", "attributes": attributes}}


def discover(sim, tmp_path, config=None):
    run = run_connector("discover", tmp_path, config=config or sim_config(sim))
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
    needs = "flow_actions, flow_messages, flow_series_reports, flow_values_reports, flows need `flows:read`"
    assert needs in status["message"]


def test_discover_lists_every_stream_the_config_can_run(klaviyo_sim, tmp_path):
    catalog = discover(klaviyo_sim, tmp_path, everything(klaviyo_sim))
    assert sorted(stream["name"] for stream in catalog["streams"]) == sorted(STREAMS)
    offered = {stream["name"] for stream in discover(klaviyo_sim, tmp_path)["streams"]}
    assert offered == set(STREAMS) - {"campaigns_v1", "events_custom_dates", "metric_aggregates"}


@pytest.mark.parametrize("revision", ["2026-07-15", "2023-10-15"])
def test_full_refresh_read_of_every_stream_returns_the_simulators_records(klaviyo_sim, tmp_path, revision):
    config = everything(klaviyo_sim, revision=revision)
    catalog = discover(klaviyo_sim, tmp_path, config)
    run = run_connector("read", tmp_path, config=config, catalog=configured_catalog(catalog, incremental=False))
    expected = expected_ids(klaviyo_sim.dataset, revision)

    assert run.returncode == 0, run.errors()
    schemas = {stream["name"]: stream["json_schema"] for stream in catalog["streams"]}
    assert set(schemas) == set(STREAMS) - (NOT_IN_2023 if revision == "2023-10-15" else set())
    for stream in schemas:
        records = run.records(stream)
        for record in records:
            Draft7Validator(schemas[stream]).validate(record)
        if stream == "metric_aggregates":  # its rows are held to the simulator's events elsewhere
            assert records
            continue
        keys = [key(stream, record) for record in records]
        assert len(keys) == len(set(keys)), f"{stream}: duplicates"
        assert set(keys) == expected[stream], stream
        assert keys, f"{stream}: the simulator holds data for every stream"


def test_incremental_read_then_a_second_read_returns_only_newer_records(klaviyo_sim, tmp_path):
    dataset = klaviyo_sim.dataset
    dataset.hold_back(60 * DAY)  # the last 60 days of changes arrive between the two reads
    streams = ["templates", "lists", "segments"]
    catalog = configured_catalog(discover(klaviyo_sim, tmp_path), streams)
    config = sim_config(klaviyo_sim)

    first = run_connector("read", tmp_path, config=config, catalog=catalog)
    assert first.returncode == 0, first.errors()
    for stream in streams:
        assert {r["id"] for r in first.records(stream)} == expected_ids(dataset)[stream]
        newest = max(r["updated"] for r in first.records(stream)).replace("+00:00", "Z")
        (finished,) = first.stream_state(stream)["slices"]  # one window, up to the read's now
        assert finished["most_recent_cursor_value"] == newest and finished["end"] == utc(NOW)

    dataset.reveal()
    second = run_connector("read", tmp_path, config=config, catalog=catalog, state=first.final_states())
    assert second.returncode == 0, second.errors()
    for stream in streams:
        cursor = first.stream_state(stream)["slices"][0]["most_recent_cursor_value"].replace("Z", "+00:00")
        records = second.records(stream)
        assert all(record["updated"] >= cursor for record in records), "nothing older than the cursor"
        newer = {r.id for r in dataset.collection(stream) if iso(r.times["updated"]) >= cursor}
        assert {record["id"] for record in records} == newer
        assert any(iso(r.times["updated"]) > cursor for r in dataset.collection(stream)), "the hold-back hid changes"


def test_a_key_lacking_a_selected_streams_scope_reads_the_others_then_ends_with_one_error_naming_it(
    klaviyo_sim, tmp_path
):
    catalog = configured_catalog(discover(klaviyo_sim, tmp_path), ["lists", "metrics"])
    run = run_connector(
        "read", tmp_path, config=sim_config(klaviyo_sim, key=key_without("lists:read")), catalog=catalog
    )

    assert run.returncode == 1
    assert {record["id"] for record in run.records("metrics")} == {m.id for m in klaviyo_sim.dataset.metrics}
    assert not run.records("lists")
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
