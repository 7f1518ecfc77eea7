"""spec and discover: every stream with its draft-07 schema, primary key, cursor and sync modes."""

from __future__ import annotations

import time

import pytest
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import discover
from jsonschema import Draft7Validator

from source_klaviyo import SourceKlaviyo
from source_klaviyo.errors import MAX_RETRIES
from unit_tests.klaviyo_mock import METRIC, QUERY, config, run_read, source, url

EXPECTED = {
    "campaigns_v1": None,
    "campaigns_email": None,
    "campaigns_sms": None,
    "campaigns_push": None,
    "campaign_messages": None,
    "templates": "updated",
    "profiles": "created",
    "events": "datetime",
    "events_custom_dates": None,
    "metrics": None,
    "lists": "updated",
    "segments": "updated",
    "list_memberships": "joined_group_at",
    "segment_memberships": "joined_group_at",
    "global_exclusions": "timestamp",
    "list_exclusions": "timestamp",
    "flows": None,
    "flow_actions": "updated",
    "flow_messages": "updated",
    "tags": None,
    "tag_groups": None,
    "coupons": None,
    "coupon_codes": None,
    "forms": "updated_at",
    "catalog_items": None,
    "catalog_variants": None,
    "catalog_categories": None,
    "metric_aggregates": "date",
    "campaign_values_reports": "start",
    "flow_values_reports": "start",
    "flow_series_reports": "date",
    "form_values_reports": "start",
    "form_series_reports": "date",
    "segment_values_reports": "start",
    "segment_series_reports": "date",
}
COUNTING_CONVERSIONS = {"campaign_values_reports", "flow_values_reports", "flow_series_reports"}
KEYS = {
    "list_memberships": [["list_id"], ["profile_id"]],
    "segment_memberships": [["segment_id"], ["profile_id"]],
    "list_exclusions": [["list_id"], ["profile_id"]],
}


# What makes the three streams that need more than a key runnable.
EVERYTHING = config(
    events_custom_dates={"start": "2025-11-01T00:00:00Z", "end": "2025-12-01T00:00:00Z"},
    metric_aggregates=QUERY,
    legacy_v1_campaigns=True,
    conversion_metric="Placed Order",
)
NEED_SETTINGS = {
    "events_custom_dates": "`events_custom_dates`",
    "metric_aggregates": "`metric_aggregates`",
    "campaigns_v1": "`legacy_v1_campaigns`",
}


def discovered(cfg):
    return {stream.name: stream for stream in discover(source(), cfg).catalog.catalog.streams}


def test_discover_lists_every_stream_with_schema_key_cursor_and_modes(api):
    streams = discovered(EVERYTHING)

    assert set(streams) == set(EXPECTED)
    assert api.call_count == 0, "discover needs no request"
    for name, cursor in EXPECTED.items():
        stream = streams[name]
        Draft7Validator.check_schema(stream.json_schema)
        assert stream.json_schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert stream.source_defined_primary_key == KEYS.get(name, [["id"]])
        assert all(stream.json_schema["properties"][key]["type"] == "string" for (key,) in KEYS.get(name, [["id"]]))
        if cursor:
            assert stream.supported_sync_modes == [SyncMode.full_refresh, SyncMode.incremental]
            assert stream.default_cursor_field == [cursor]
            # Profiles let the user pick created or updated; every other cursor is the stream's own.
            assert stream.source_defined_cursor is (name != "profiles")
            assert cursor in stream.json_schema["properties"]
        else:
            assert stream.supported_sync_modes == [SyncMode.full_refresh]


def test_spec_is_served_from_the_package():
    spec = SourceKlaviyo().spec(logger=None)
    properties = spec.connectionSpecification["properties"]
    assert properties["api_key"]["airbyte_secret"] is True
    assert properties["revision"]["enum"] == ["2026-07-15", "2023-10-15"]


def test_with_only_a_key_discover_offers_just_the_streams_that_need_nothing_more(api):
    api.get(url("metrics"), json={"data": [{**METRIC, "attributes": {"name": "Viewed Product"}}], "links": {}})
    assert set(discovered(config())) == set(EXPECTED) - set(NEED_SETTINGS) - COUNTING_CONVERSIONS
    for stream, setting in NEED_SETTINGS.items():
        others = {name: value for name, value in EVERYTHING.items() if setting.strip("`") != name}
        assert stream not in discovered(others), f"{stream} needs {setting}"


def test_campaign_and_flow_reports_are_offered_once_the_account_has_a_placed_order_metric(api):
    api.get(url("metrics"), json={"data": [METRIC], "links": {}})
    assert set(discovered(config())) >= COUNTING_CONVERSIONS


def test_with_klaviyo_unreachable_discover_offers_the_reports_after_one_short_lookup(api, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # the backoff waits; tries stay bounded
    metrics = api.get(url("metrics"), status_code=503, json={"errors": []})
    assert set(discovered(config())) >= COUNTING_CONVERSIONS
    assert 1 < metrics.call_count <= MAX_RETRIES + 1, "one lookup's tries, not one lookup per report stream"


@pytest.mark.parametrize("stream", NEED_SETTINGS)
def test_a_catalog_selecting_a_stream_whose_setting_is_gone_is_a_config_error_naming_both(api, stream):
    output = run_read(config(), {stream: SyncMode.full_refresh}, expect_failure=True)
    (error,) = output.errors
    assert error.trace.error.failure_type == FailureType.config_error
    assert f"the {stream} stream, which needs {NEED_SETTINGS[stream]}" in error.trace.error.message
    assert api.call_count == 0


def test_per_parent_streams_say_they_resume_an_interrupted_full_refresh(api):
    """They print resume STATEs (the parents done, the next page of the one under way) in full refresh too."""
    resumable = {name: stream.is_resumable for name, stream in discovered(EVERYTHING).items()}
    assert all(resumable[name] for name in ("campaign_messages", "coupon_codes", "list_memberships", "flow_actions"))
    assert not any(resumable[name] for name in ("tags", "coupons", "campaigns_email")), "full refresh, no resume"
