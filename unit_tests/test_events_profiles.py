"""Events and profiles options: metric filter, custom dates, the profiles cursor, predictive analytics."""

from __future__ import annotations

import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalog, FailureType, SyncMode
from airbyte_cdk.test.catalog_builder import ConfiguredAirbyteStreamBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.models.outcome import ExpectedOutcome

from unit_tests.klaviyo_mock import (
    METRIC,
    config,
    data_requests,
    filter_terms,
    resource,
    run_read,
    sample,
    serve_pages,
    source,
    stream_state,
)
from unit_tests.test_streams import UPDATED

pytestmark = pytest.mark.usefixtures("one_window_per_range")

METRICS = [
    resource("metrics", "MET1", {"name": "Placed Order"}),
    resource("metrics", "MET2", {"name": "Opened Email"}),
    resource("metrics", "MET3", {"name": "Placed Order"}),  # two integrations, one name
]


def serve_events(api):
    serve_pages(api, "metrics", [METRICS])
    serve_pages(api, "events", [[sample("events", 1, UPDATED)]], included=[METRIC])


def test_event_metrics_by_name_or_id_read_each_metric_with_its_own_filter(api):
    serve_events(api)
    output = run_read(config(num_workers=1, event_metrics=["Placed Order", "MET2"]), {"events": SyncMode.incremental})

    assert not output.errors
    filters = [
        term
        for request in data_requests(api)
        if request["path"] == "/api/events"
        for term in filter_terms(request["query"])
    ]
    assert sorted(term for term in filters if term.startswith("equals")) == [
        "equals(metric_id,'MET1')",
        "equals(metric_id,'MET2')",
        "equals(metric_id,'MET3')",
    ]


def test_an_unknown_event_metric_is_a_config_error_listing_the_metrics(api):
    serve_events(api)
    output = run_read(config(event_metrics=["Placed Ordr"]), {"events": SyncMode.incremental}, expect_failure=True)

    (error,) = output.errors
    assert error.trace.error.failure_type == FailureType.config_error
    assert "'Placed Ordr'" in error.trace.error.message and "Opened Email, Placed Order" in error.trace.error.message


def test_events_custom_dates_selected_without_its_range_is_a_config_error(api):
    output = run_read(config(), {"events_custom_dates": SyncMode.full_refresh}, expect_failure=True)

    (error,) = output.errors
    assert error.trace.error.failure_type == FailureType.config_error
    assert "`events_custom_dates`" in error.trace.error.message
    assert api.call_count == 0


def read_profiles(api, cursor_field, **extra):
    serve_pages(api, "profiles", [[sample("profiles", 1, UPDATED)]])
    stream = ConfiguredAirbyteStreamBuilder().with_name("profiles").with_sync_mode(SyncMode.incremental).build()
    stream.cursor_field = cursor_field
    catalog = ConfiguredAirbyteCatalog(streams=[stream])
    settings = config(num_workers=1, **extra)
    outcome = (
        ExpectedOutcome.EXPECT_SUCCESS
        if cursor_field in (["created"], ["updated"])
        else ExpectedOutcome.EXPECT_EXCEPTION
    )
    return read(source(), settings, catalog, expected_outcome=outcome)


def test_profiles_follow_the_cursor_chosen_in_the_catalog(api):
    output = read_profiles(api, ["updated"])

    (request,) = data_requests(api)
    assert request["query"]["sort"] == "updated"
    assert all("(updated," in term for term in filter_terms(request["query"]))
    assert stream_state(output, "profiles")["slices"][0]["most_recent_cursor_value"] == "2026-11-01T12:00:00Z"


def test_a_profiles_cursor_other_than_created_or_updated_is_a_config_error(api):
    output = read_profiles(api, ["email"])

    (error,) = output.errors
    assert error.trace.error.failure_type == FailureType.config_error
    assert "`created` or `updated`" in error.trace.error.message


def test_predictive_analytics_are_asked_for_only_when_configured(api):
    read_profiles(api, ["created"], profiles_predictive_analytics=True)
    (request,) = data_requests(api)
    assert request["query"]["additional-fields[profile]"] == "subscriptions,predictive_analytics"


def test_events_carry_the_ids_klaviyo_attributes_them_to_from_the_included_attribution(api):
    event = sample("events", 1, UPDATED)
    event["relationships"]["attributions"] = {"data": [{"type": "attribution", "id": "ATT1"}]}
    unattributed = sample("events", 2, UPDATED)
    attribution = {
        "type": "attribution",
        "id": "ATT1",
        "relationships": {
            "event": {"data": {"type": "event", "id": event["id"]}},
            "campaign": {"data": {"type": "campaign", "id": "CAM1"}},
            "campaign-message": {"data": {"type": "campaign-message", "id": "MSG1"}},
        },
    }
    serve_pages(api, "events", [[event, unattributed]], included=[METRIC, attribution])
    output = run_read(config(num_workers=1), {"events": SyncMode.incremental})

    first, second = (message.record.data for message in output.records)
    assert (first["campaign_id"], first["campaign_message_id"], first["metric_name"]) == (
        "CAM1",
        "MSG1",
        "Placed Order",
    )
    assert "flow_id" not in first and "flow_message_id" not in first
    assert not {"campaign_id", "flow_id"} & set(second)
    (request,) = data_requests(api)
    assert request["query"]["include"] == "metric,attributions"
