"""Per stream: request path, parameters and headers; paging; flat records; backfill start."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from airbyte_cdk.models import SyncMode
from jsonschema import Draft7Validator

from source_klaviyo.endpoints import endpoint
from source_klaviyo.streams import STREAM_CLASSES
from source_klaviyo.streams.children import ChildStream
from source_klaviyo.streams.reports import ReportStream
from unit_tests.klaviyo_mock import (
    API_KEY,
    METRIC,
    NOW,
    assert_near,
    bound,
    config,
    data_requests,
    filter_terms,
    run_read,
    sample,
    serve_pages,
    source,
)

pytestmark = pytest.mark.usefixtures("one_window_per_range")

REVISIONS = ["2026-07-15", "2023-10-15"]
# The streams that read one JSON:API collection as it is (campaigns_v1, metric_aggregates, per-parent streams and
# exclusions have tests of their own).
OWN_TESTS = ("campaigns_v1", "metric_aggregates", "global_exclusions", "list_exclusions")
COLLECTIONS = [
    cls
    for cls in STREAM_CLASSES
    if cls.name not in OWN_TESTS and not issubclass(cls, (ChildStream, ReportStream))  # reports: test_reports.py
]
ENDPOINT_OF = {cls.name: cls.endpoint_name for cls in COLLECTIONS}
INCREMENTAL = ["templates", "lists", "segments", "profiles", "events", "forms"]
# Streams a revision does not offer.
NOT_IN = {"2023-10-15": {"campaigns_push", "forms"}}
CASES = [
    (stream, revision)
    for revision in REVISIONS
    for stream in sorted(ENDPOINT_OF)
    if stream not in NOT_IN.get(revision, ())
]
EVENTS_INCLUDE = {"2026-07-15": "metric,attributions", "2023-10-15": "metric"}
INCLUDED = {
    "events": EVENTS_INCLUDE,
    "events_custom_dates": EVENTS_INCLUDE,
    "tags": "tag-group",
    "flows": "flow-actions,tags",
}
TAGGED = ("campaigns_email", "campaigns_sms", "campaigns_push", "lists", "segments")
WINDOWED = ["profiles", "events", "events_custom_dates"]
UPDATED = "2026-11-01T12:00:00+00:00"

CUSTOM_DATES = {"start": "2026-10-01T00:00:00Z", "end": "2026-11-10T12:00:00Z"}


def stream_config(stream: str, **extra: Any) -> dict[str, Any]:
    """Config for reading `stream` here: windowed streams on one worker, so each reads one window."""
    if stream in WINDOWED:
        extra.setdefault("num_workers", 1)
    if stream == "events_custom_dates":
        extra.setdefault("events_custom_dates", CUSTOM_DATES)
    return config(**extra)


def serve(api: Any, stream: str, pages: list, revision: str = "2026-07-15") -> None:
    serve_pages(
        api, ENDPOINT_OF[stream], pages, revision, included=[METRIC] if ENDPOINT_OF[stream] == "events" else None
    )


@pytest.mark.parametrize("stream, revision", CASES)
def test_first_request_has_the_revision_path_page_size_headers_and_filters(api, stream, revision):
    serve(api, stream, [[sample(ENDPOINT_OF[stream], 1, UPDATED, revision)]], revision)
    mode = SyncMode.incremental if stream in INCREMENTAL else SyncMode.full_refresh
    output = run_read(stream_config(stream, revision=revision), {stream: mode})

    assert not output.errors
    requests = data_requests(api)
    facts = endpoint(revision, ENDPOINT_OF[stream])
    expected_path = f"/api/{facts.name}/" if revision == "2023-10-15" else f"/api/{facts.name}"
    for request in requests:
        assert request["path"] == expected_path
        assert request["headers"]["revision"] == revision
        assert request["headers"]["Accept"] == "application/vnd.api+json"
        assert request["headers"]["Authorization"] == f"Klaviyo-API-Key {API_KEY}"
        assert request["query"].get("page[size]") == (str(facts.max_page_size) if facts.max_page_size else None)
        assert request["timeout"] == (10, 60), "explicit connect and read timeouts"
        included = INCLUDED.get(stream, "tags" if stream in TAGGED else None)
        assert request["query"].get("include") == (included.get(revision) if isinstance(included, dict) else included)

    terms = [filter_terms(request["query"]) for request in requests]
    two_years_ago = NOW - timedelta(days=730)
    if stream.startswith("campaigns"):
        channel = {"campaigns_email": "email", "campaigns_sms": "sms", "campaigns_push": "mobile_push"}[stream]
        assert sorted(terms) == [
            [f"equals(messages.channel,'{channel}')", "equals(archived,false)"],
            [f"equals(messages.channel,'{channel}')", "equals(archived,true)"],
        ]
    elif stream == "flows":
        assert sorted(terms) == [["equals(archived,false)"], ["equals(archived,true)"]]
    elif stream in (
        "metrics",
        "tags",
        "tag_groups",
        "coupons",
        "catalog_items",
        "catalog_variants",
        "catalog_categories",
    ):
        assert terms == [[]]
    elif stream == "forms":  # all history by default
        assert terms == [
            ["greater-or-equal(updated_at,2012-01-01T00:00:00Z)", f"less-than(updated_at,{NOW:%Y-%m-%dT%H:%M:%SZ})"]
        ]
    elif stream == "events":
        (window,) = terms
        assert_near(bound(window, "greater-or-equal"), NOW - timedelta(days=30))
        assert_near(bound(window, "less-than"), NOW)
        assert requests[0]["query"]["sort"] == "datetime"
    elif stream == "events_custom_dates":  # start exclusive, end inclusive, at one-second precision
        assert terms == [
            ["greater-or-equal(datetime,2026-10-01T00:00:01Z)", "less-than(datetime,2026-11-10T12:00:01Z)"]
        ]
    elif stream == "profiles":
        (window,) = terms
        assert_near(bound(window, "greater-than"), two_years_ago - timedelta(seconds=1))
        assert_near(bound(window, "less-than"), NOW)
        query = requests[0]["query"]
        assert (query["sort"], query["additional-fields[profile]"]) == ("created", "subscriptions")
    elif stream == "templates":
        (window,) = terms
        assert_near(bound(window, "greater-or-equal"), two_years_ago)
        assert_near(bound(window, "less-than"), NOW)
    else:  # lists and segments filter only greater-than: one second before the window start
        (window,) = terms
        assert len(window) == 1
        assert_near(bound(window, "greater-than"), two_years_ago - timedelta(seconds=1))


@pytest.mark.parametrize("stream", sorted(ENDPOINT_OF))
def test_follows_links_next_through_every_page(api, stream):
    name = ENDPOINT_OF[stream]
    pages = [[sample(name, page * 10 + i, UPDATED) for i in range(2)] for page in range(3)]
    serve(api, stream, pages)
    output = run_read(stream_config(stream), {stream: SyncMode.full_refresh})

    ids = [record.record.data["id"] for record in output.records]
    expected = [resource["id"] for page in pages for resource in page]
    partitions = 2 if stream.startswith("campaigns") or stream == "flows" else 1  # archived and unarchived
    assert sorted(ids) == sorted(expected * partitions)
    cursors = [query.get("page[cursor]") for query in (r["query"] for r in data_requests(api))]
    assert sorted(cursors, key=str) == sorted([None, "1", "2"] * partitions, key=str)


@pytest.mark.parametrize("stream, revision", CASES)
def test_records_are_flat_and_match_the_stream_schema(api, stream, revision):
    name = ENDPOINT_OF[stream]
    body = sample(name, 7, UPDATED, revision)
    serve(api, stream, [[body]], revision)
    mode = SyncMode.incremental if stream in INCREMENTAL else SyncMode.full_refresh
    output = run_read(stream_config(stream, revision=revision), {stream: mode})

    record = output.records[0].record.data
    expected = {"id": body["id"], **body["attributes"]}
    stream_class = next(cls for cls in COLLECTIONS if cls.name == stream)
    for relationship, field in stream_class.relationships.items():
        linkage = body["relationships"][relationship]["data"]
        expected[field] = linkage["id"] if isinstance(linkage, dict) else [item["id"] for item in linkage]
    if name == "events":
        expected["metric_name"] = METRIC["attributes"]["name"]
    # The CDK's message serializer leaves top-level nulls out of the record.
    assert record == {field: value for field, value in expected.items() if value is not None}
    schema = _schema(stream)
    Draft7Validator(schema).validate(record)
    assert set(record) <= set(schema["properties"]), "every emitted field is declared in the schema"


def _schema(stream: str) -> Mapping[str, Any]:
    (instance,) = [s for s in source().streams(stream_config(stream)) if s.name == stream]
    return instance.get_json_schema()


def test_start_date_narrows_full_refresh_streams_that_klaviyo_filters_by_time(api):
    serve_pages(api, "campaigns", [[sample("campaigns", 1, UPDATED)]])
    serve_pages(api, "flows", [[sample("flows", 1, UPDATED)]])
    run_read(
        config(start_date="2025-06-01T00:00:00Z"),
        {"campaigns_sms": SyncMode.full_refresh, "flows": SyncMode.full_refresh},
    )
    terms = [filter_terms(r["query"]) for r in data_requests(api)]
    assert sorted(t for window in terms for t in window if "updated" in t) == [
        "greater-or-equal(updated,2025-06-01T00:00:00Z)",  # flows, unarchived and archived
        "greater-or-equal(updated,2025-06-01T00:00:00Z)",
        "greater-or-equal(updated_at,2025-06-01T00:00:00Z)",  # campaigns, unarchived and archived
        "greater-or-equal(updated_at,2025-06-01T00:00:00Z)",
    ]
