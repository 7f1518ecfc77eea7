"""Per stream: request path, parameters and headers; paging; flat records; state; backfill start."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.state_builder import StateBuilder
from jsonschema import Draft7Validator

from integration_tests.klaviyo_sim.contract import split_top_level
from source_klaviyo.cursor import parse_klaviyo_datetime
from source_klaviyo.endpoints import endpoint
from source_klaviyo.streams import STREAM_CLASSES
from unit_tests.klaviyo_mock import API_KEY, METRIC, config, run_read, sample, serve_pages, stream_state

REVISIONS = ["2026-07-15", "2023-10-15"]
# The JSON:API collection streams (campaigns_v1 and metric_aggregates have tests of their own).
COLLECTIONS = [cls for cls in STREAM_CLASSES if cls.name not in ("campaigns_v1", "metric_aggregates")]
ENDPOINT_OF = {cls.name: cls.endpoint_name for cls in COLLECTIONS}
INCREMENTAL = ["templates", "lists", "segments", "profiles", "events"]
WINDOWED = ["profiles", "events", "events_custom_dates"]
UPDATED = "2026-11-01T12:00:00+00:00"
NOW = datetime.now(timezone.utc)
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


def data_requests(api: Any) -> list[Mapping[str, Any]]:
    """The read's requests as {path, query, headers}, without the access probe a read opens with.

    The probe is the read's first request to each path."""
    probed, calls = set(), []
    for call in api.request_history:
        path = urlsplit(call.url).path
        if path not in probed:
            probed.add(path)
            continue
        query = dict(parse_qsl(urlsplit(call.url).query))
        calls.append({"path": path, "query": query, "headers": call.headers, "timeout": call.timeout})
    return calls


def filter_terms(query: Mapping[str, str]) -> list[str]:
    return split_top_level(query["filter"]) if "filter" in query else []


def bound(terms: list[str], operator: str) -> datetime:
    (term,) = [t for t in terms if t.startswith(operator + "(")]
    return parse_klaviyo_datetime(term[len(operator) + 1 : -1].split(",", 1)[1])


def assert_near(value: datetime, expected: datetime, seconds: int = 120) -> None:
    assert abs((value - expected).total_seconds()) < seconds, f"{value} is not within {seconds}s of {expected}"


@pytest.mark.parametrize("revision", REVISIONS)
@pytest.mark.parametrize("stream", sorted(ENDPOINT_OF))
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

    terms = [filter_terms(request["query"]) for request in requests]
    two_years_ago = NOW - timedelta(days=730)
    if stream.startswith("campaigns"):
        channel = "email" if stream == "campaigns_email" else "sms"
        assert sorted(terms) == [
            [f"equals(messages.channel,'{channel}')", "equals(archived,false)"],
            [f"equals(messages.channel,'{channel}')", "equals(archived,true)"],
        ]
    elif stream in ("metrics", "flows"):
        assert terms == [[]]
    elif stream == "events":
        (window,) = terms
        assert_near(bound(window, "greater-or-equal"), NOW - timedelta(days=30))
        assert_near(bound(window, "less-than"), NOW)
        assert {key: requests[0]["query"][key] for key in ("sort", "include")} == {
            "sort": "datetime",
            "include": "metric",
        }
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
    partitions = 2 if stream.startswith("campaigns") else 1  # archived and unarchived
    assert sorted(ids) == sorted(expected * partitions)
    cursors = [query.get("page[cursor]") for query in (r["query"] for r in data_requests(api))]
    assert sorted(cursors, key=str) == sorted([None, "1", "2"] * partitions, key=str)


@pytest.mark.parametrize("revision", REVISIONS)
@pytest.mark.parametrize("stream", sorted(ENDPOINT_OF))
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
    from source_klaviyo.source import SourceKlaviyo

    (instance,) = [s for s in SourceKlaviyo().streams(stream_config(stream)) if s.name == stream]
    return instance.get_json_schema()


CURSOR = {
    "templates": "updated",
    "lists": "updated",
    "segments": "updated",
    "profiles": "created",
    "events": "datetime",
}


@pytest.mark.parametrize("stream", INCREMENTAL)
def test_state_is_the_newest_emitted_cursor_and_the_next_sync_starts_there(api, stream):
    updates = ["2026-10-01T08:00:00+00:00", "2026-11-20T09:30:15+00:00", "2026-11-02T00:00:00+00:00"]
    serve(api, stream, [[sample(ENDPOINT_OF[stream], i, updated)] for i, updated in enumerate(updates)])
    settings = stream_config(stream, event_lookback_hours=0)
    first = run_read(settings, {stream: SyncMode.incremental})
    assert len(first.records) == 3
    assert stream_state(first, stream) == {CURSOR[stream]: "2026-11-20T09:30:15Z"}

    api.reset_mock()
    state = StateBuilder().with_stream_state(stream, stream_state(first, stream)).build()
    run_read(settings, {stream: SyncMode.incremental}, state=state)
    (window,) = {tuple(filter_terms(r["query"])) for r in data_requests(api)}
    window = list(window)
    cursor = datetime(2026, 11, 20, 9, 30, 15, tzinfo=timezone.utc)
    if stream in ("templates", "events"):
        assert bound(window, "greater-or-equal") == cursor
    else:
        assert bound(window, "greater-than") == cursor - timedelta(seconds=1)


def test_an_incremental_events_sync_looks_back_for_late_events(api):
    serve(api, "events", [[sample("events", 1, UPDATED)]])
    state = StateBuilder().with_stream_state("events", {"datetime": "2026-11-20T09:30:15Z"}).build()
    run_read(stream_config("events", event_lookback_hours=36), {"events": SyncMode.incremental}, state=state)
    (window,) = [filter_terms(r["query"]) for r in data_requests(api)]
    assert bound(window, "greater-or-equal") == datetime(2026, 11, 18, 21, 30, 15, tzinfo=timezone.utc)


@pytest.mark.parametrize("stream", ["lists", "segments"])
def test_greater_than_only_streams_leave_records_updated_after_the_window_for_the_next_sync(api, stream):
    name = ENDPOINT_OF[stream]
    later = (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    serve_pages(api, name, [[sample(name, 1, UPDATED), sample(name, 2, later)]])
    output = run_read(config(), {stream: SyncMode.incremental})

    assert [r.record.data["updated"] for r in output.records] == [UPDATED]
    assert stream_state(output, stream) == {"updated": "2026-11-01T12:00:00Z"}


def test_first_sync_starts_at_the_later_of_the_window_and_start_date(api):
    serve_pages(api, "templates", [[sample("templates", 1, UPDATED)]])
    recent = (NOW - timedelta(days=10)).replace(microsecond=0)
    run_read(config(start_date=recent.strftime("%Y-%m-%dT%H:%M:%SZ")), {"templates": SyncMode.incremental})
    (window,) = [filter_terms(r["query"]) for r in data_requests(api)]
    assert bound(window, "greater-or-equal") == recent

    api.reset_mock()
    run_read(config(start_date="2020-01-01T00:00:00Z"), {"templates": SyncMode.incremental})
    (window,) = [filter_terms(r["query"]) for r in data_requests(api)]
    assert_near(bound(window, "greater-or-equal"), NOW - timedelta(days=730))


@pytest.mark.parametrize(
    "days, expected_start",
    [(7, NOW - timedelta(days=7)), (0, datetime(2012, 1, 1, tzinfo=timezone.utc))],
    ids=["seven-days", "all-history"],
)
def test_backfill_window_override_moves_the_first_sync_start(api, days, expected_start):
    serve_pages(api, "templates", [[sample("templates", 1, UPDATED)]])
    run_read(config(backfill_window_days={"templates": days}), {"templates": SyncMode.incremental})
    (window,) = [filter_terms(r["query"]) for r in data_requests(api)]
    assert_near(bound(window, "greater-or-equal"), expected_start)


def test_start_date_narrows_full_refresh_streams_that_klaviyo_filters_by_time(api):
    serve_pages(api, "campaigns", [[sample("campaigns", 1, UPDATED)]])
    serve_pages(api, "flows", [[sample("flows", 1, UPDATED)]])
    run_read(
        config(start_date="2025-06-01T00:00:00Z"),
        {"campaigns_sms": SyncMode.full_refresh, "flows": SyncMode.full_refresh},
    )
    terms = [filter_terms(r["query"]) for r in data_requests(api)]
    assert sorted(t for window in terms for t in window if "updated" in t) == [
        "greater-or-equal(updated,2025-06-01T00:00:00Z)",
        "greater-or-equal(updated_at,2025-06-01T00:00:00Z)",
        "greater-or-equal(updated_at,2025-06-01T00:00:00Z)",
    ]


def test_full_refresh_of_an_incremental_stream_ignores_its_state(api):
    serve_pages(api, "templates", [[sample("templates", 1, UPDATED)]])
    state = StateBuilder().with_stream_state("templates", {"updated": "2026-11-20T00:00:00Z"}).build()
    output = run_read(config(), {"templates": SyncMode.full_refresh}, state=state)
    (window,) = [filter_terms(r["query"]) for r in data_requests(api)]
    assert_near(bound(window, "greater-or-equal"), NOW - timedelta(days=730))
    assert len(output.records) == 1
