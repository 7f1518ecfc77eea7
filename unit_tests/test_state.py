"""Incremental state: resume from any state however old, keep every finished window, take over older shapes.

Every test reads on a fixed clock, once at NOW and once a year later, with states and windows relative
to it: nothing here depends on the day the tests run, and a connector that read the wall clock
anywhere would be a year off in one of the two runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from airbyte_cdk.models import AirbyteStateMessageSerializer, SyncMode
from airbyte_cdk.test.state_builder import StateBuilder

from source_klaviyo.clock import KLAVIYO_EPOCH, format_klaviyo_datetime, parse_klaviyo_datetime
from source_klaviyo.state import UNFINISHED
from unit_tests.klaviyo_mock import (
    A_YEAR_LATER,
    METRIC,
    NOW,
    all_output,
    bound,
    config,
    data_requests,
    filter_terms,
    iso,
    run_read,
    sample,
    serve_pages,
    stream_state,
    url,
)

pytestmark = [
    pytest.mark.parametrize("now", [NOW, A_YEAR_LATER], ids=["now", "a-year-later"]),
    pytest.mark.usefixtures("one_window_per_range"),
]

# stream -> (endpoint, cursor field, first-sync window in days)
INCREMENTAL = {
    "templates": ("templates", "updated", 730),
    "lists": ("lists", "updated", 730),
    "segments": ("segments", "updated", 730),
    "profiles": ("profiles", "created", 730),
    "events": ("events", "datetime", 30),
}
LOOKBACK = timedelta(hours=24)  # the default event_lookback_hours


def utc(moment: datetime) -> str:
    return format_klaviyo_datetime(moment)


def serve(api, stream, updated: list[datetime]) -> None:
    endpoint = INCREMENTAL[stream][0]
    pages = [[sample(endpoint, index, iso(moment))] for index, moment in enumerate(updated)]
    serve_pages(api, endpoint, pages or [[]], included=[METRIC] if endpoint == "events" else None)


def read(api, stream, now, state=None, **settings):
    settings.setdefault("num_workers", 1)  # one window per range: the requests show the ranges read
    return run_read(config(**settings), {stream: SyncMode.incremental}, state=state, now=now)


def windows(api) -> list[tuple[datetime, datetime | None]]:
    """[start, end) of each data request's time filter (end None where Klaviyo takes only greater-than)."""
    result = []
    for request in data_requests(api):
        terms = filter_terms(request["query"])
        if any(term.startswith("greater-or-equal(") for term in terms):
            start = bound(terms, "greater-or-equal")
        else:
            start = bound(terms, "greater-than") + timedelta(seconds=1)
        end = bound(terms, "less-than") if any(term.startswith("less-than(") for term in terms) else None
        result.append((start, end))
    return result


def state_of(stream: str, value: dict) -> list:
    return StateBuilder().with_stream_state(stream, value).build()


@pytest.mark.parametrize("stream", INCREMENTAL)
def test_a_state_older_than_the_backfill_window_resumes_from_the_state(api, stream, now):
    """A connection paused for two months past its window reads everything since its state, not since the window."""
    _, cursor, days = INCREMENTAL[stream]
    old = now - timedelta(days=days + 60)
    serve(api, stream, [old + timedelta(days=1)])
    output = read(api, stream, now, state_of(stream, {cursor: utc(old)}))

    lookback = LOOKBACK if stream == "events" else timedelta(0)
    assert [start for start, _ in windows(api)] == [old - lookback]
    assert len(output.records) == 1


@pytest.mark.parametrize("stream", INCREMENTAL)
def test_start_date_bounds_a_resumed_sync_too(api, stream, now):
    _, cursor, days = INCREMENTAL[stream]
    start_date = (now - timedelta(days=10)).replace(microsecond=0)
    serve(api, stream, [])
    read(api, stream, now, state_of(stream, {cursor: utc(now - timedelta(days=days + 60))}), start_date=utc(start_date))
    assert [start for start, _ in windows(api)] == [start_date]


@pytest.mark.parametrize("stream", INCREMENTAL)
def test_a_first_sync_reads_the_backfill_window_and_leaves_one_finished_window_up_to_now(api, stream, now):
    _, cursor, days = INCREMENTAL[stream]
    newest = now - timedelta(days=2)
    serve(api, stream, [now - timedelta(days=5), newest])
    output = read(api, stream, now)

    assert windows(api)[0][0] == (now - timedelta(days=days)).replace(microsecond=0)
    assert stream_state(output, stream) == {
        "state_type": "date-range",
        "slices": [
            {"start": utc(now - timedelta(days=days)), "end": utc(now), "most_recent_cursor_value": utc(newest)}
        ],
    }


def test_after_a_finished_sync_the_next_looks_back_from_its_end_for_late_events(api, now):
    state = {
        "state_type": "date-range",
        "slices": [{"start": utc(now - timedelta(days=40)), "end": utc(now - timedelta(hours=6))}],
    }
    serve(api, "events", [])
    read(api, "events", now, state_of("events", state), event_lookback_hours=36)
    assert windows(api) == [(now - timedelta(hours=6 + 36), now)]


@pytest.mark.parametrize("stream", INCREMENTAL)
def test_after_a_finished_sync_the_next_reads_again_from_its_newest_record(api, stream, now):
    """A record Klaviyo shows a moment after its cursor time is not skipped: the last window counts up to its
    newest record, as the old single-value state did."""
    newest = now - timedelta(days=3)
    state = {
        "state_type": "date-range",
        "slices": [
            {
                "start": utc(now - timedelta(days=40)),
                "end": utc(now - timedelta(hours=6)),
                "most_recent_cursor_value": utc(newest),
            }
        ],
    }
    serve(api, stream, [])
    read(api, stream, now, state_of(stream, state))
    lookback = LOOKBACK if stream == "events" else timedelta(0)
    assert [start for start, _ in windows(api)] == [newest - lookback]


def test_a_resumed_sync_reads_only_the_windows_left_and_does_not_look_back_again(api, now):
    """An interrupted sync's STATE holds every window it finished, gaps and all, and marks the range it read."""
    day = timedelta(days=1)
    state = {
        "state_type": "date-range",
        "slices": [
            {"start": utc(now - 40 * day), "end": utc(now - 20 * day)},
            {"start": utc(now - 10 * day), "end": utc(now - 5 * day)},
        ],
        UNFINISHED: utc(now - day),
    }
    serve(api, "events", [])
    output = read(api, "events", now, state_of("events", state))

    assert sorted(windows(api)) == [(now - 20 * day, now - 10 * day), (now - 5 * day, now)]
    assert stream_state(output, "events") == {
        "state_type": "date-range",
        "slices": [{"start": utc(now - 40 * day), "end": utc(now)}],
    }


def test_state_written_while_a_sync_runs_carries_the_end_of_its_range_until_it_is_covered(api, now):
    """With several workers each page is a window of its own, checkpointed as it finishes."""
    moments = [now - timedelta(days=20) + index * timedelta(hours=7) for index in range(40)]
    serve_filtered_events(api, moments, page_size=4)
    output = read(api, "events", now, num_workers=4)

    states = [dict(m.state.stream.stream_state.__dict__) for m in output.state_messages]
    marked = [UNFINISHED in state for state in states]
    assert len(states) > 10 and marked[0] and not marked[-1]
    assert marked == sorted(marked, reverse=True), "marked until the range is covered, then never again"
    assert all(state[UNFINISHED] == utc(now) for state in states if UNFINISHED in state)
    assert sorted(record.record.data["datetime"] for record in output.records) == [iso(m) for m in moments]


def serve_filtered_events(api, moments: list[datetime], page_size: int) -> None:
    """/api/events answering each datetime window with its events, `page_size` a page, sorted."""
    events = [sample("events", index, iso(moment)) for index, moment in enumerate(moments)]

    def respond(request, context):
        query = dict(parse_qsl(urlsplit(request.url).query))
        terms = filter_terms(query)
        chosen = events[:1]  # the access probe: no filter
        if terms:
            start, end = bound(terms, "greater-or-equal"), bound(terms, "less-than")
            chosen = [e for e in events if start <= parse_klaviyo_datetime(e["attributes"]["datetime"]) < end]
        offset = int(query.pop("page[cursor]", "0"))
        links = {"self": request.url}
        if offset + page_size < len(chosen):
            links["next"] = f"{url('events')}?{urlencode({**query, 'page[cursor]': offset + page_size})}"
        context.headers["Content-Type"] = "application/vnd.api+json"
        return {"data": chosen[offset : offset + page_size], "links": links, "included": [METRIC]}

    api.get(url("events"), json=respond)


def test_a_legacy_state_message_and_a_global_one_resume_their_streams_with_a_warning(api, now):
    old = now - timedelta(days=900)
    messages = [
        {"type": "LEGACY", "data": {"templates": {"updated": utc(old)}}},
        {
            "type": "GLOBAL",
            "global": {
                "shared_state": {"cdc_offset": 42},
                "stream_states": [{"stream_descriptor": {"name": "lists"}, "stream_state": {"updated": utc(old)}}],
            },
        },
    ]
    serve(api, "templates", [])
    serve(api, "lists", [])
    output = run_read(
        config(),
        {"templates": SyncMode.incremental, "lists": SyncMode.incremental},
        state=[AirbyteStateMessageSerializer.load(message) for message in messages],
        now=now,
    )

    assert sorted(start for start, _ in windows(api)) == [old, old]
    logs = all_output(output)
    assert "LEGACY state message" in logs and "['templates']" in logs
    assert "Dropping the shared part of a GLOBAL state (['cdc_offset'])" in logs


@pytest.mark.parametrize(
    "value, words",
    [
        ({"created": "2026-01-01T00:00:00Z"}, "it has no `updated` value"),
        ({"updated": "last tuesday"}, "not all datetimes"),
        ({"updated": "0001-01-01T00:00:00Z"}, "not all datetimes after 1970"),
        ({"state_type": "date-range", "slices": [{"start": "2026-01-01T00:00:00Z"}]}, "{start, end} slices"),
    ],
    ids=["another-cursor", "not-a-datetime", "year-one", "broken-slices"],
)
def test_a_state_that_cannot_be_resumed_from_is_dropped_with_a_warning_and_read_as_a_first_sync(api, now, value, words):
    serve(api, "templates", [])
    output = read(api, "templates", now, state_of("templates", value))
    assert [start for start, _ in windows(api)] == [(now - timedelta(days=730)).replace(microsecond=0)]
    assert "Ignoring the state of stream templates" in all_output(output) and words in all_output(output)


@pytest.mark.parametrize(
    "value",
    [
        {"updated": "2099-01-01T00:00:00Z"},
        {"updated": "9999-12-31T23:59:59Z"},
        {"state_type": "date-range", "slices": [{"start": "2020-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}]},
    ],
    ids=["single-value", "the-last-second-python-knows", "date-range"],
)
def test_a_state_in_the_future_reads_nothing_and_says_so(api, now, value):
    """Airbyte's acceptance suite (`test_state_with_abnormally_large_values`) expects no records from such a state."""
    serve(api, "templates", [now - timedelta(days=1)])
    output = read(api, "templates", now, state_of("templates", value))
    assert windows(api) == [] and output.records == []
    assert "reaches into the future" in all_output(output)
    assert stream_state(output, "templates"), "the stream still says where it stands"


def test_a_state_message_without_type_or_with_an_empty_namespace_resumes_its_stream(api, now):
    """Older platforms, other tools and hand-edited files send these; the CDK's state manager skips them silently."""
    old = now - timedelta(days=900)
    messages = [
        {"stream": {"stream_descriptor": {"name": "templates"}, "stream_state": {"updated": utc(old)}}},
        {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": "lists", "namespace": ""}, "stream_state": {"updated": utc(old)}},
        },
        {
            "type": "STREAM",
            "stream": {
                "stream_descriptor": {"name": "segments", "namespace": None},
                "stream_state": {"updated": utc(old)},
            },
        },
    ]
    for stream in ("templates", "lists", "segments"):
        serve(api, stream, [])
    output = run_read(
        config(),
        {stream: SyncMode.incremental for stream in ("templates", "lists", "segments")},
        state=[AirbyteStateMessageSerializer.load(message) for message in messages],
        now=now,
    )
    assert sorted(start for start, _ in windows(api)) == [old, old, old]
    assert "namespace" not in all_output(output), "no namespace, nothing to warn about"


def test_a_named_namespace_and_a_second_state_of_a_stream_are_each_named_in_a_warning(api, now):
    old, older = now - timedelta(days=900), now - timedelta(days=1000)
    messages = [
        {
            "type": "STREAM",
            "stream": {
                "stream_descriptor": {"name": "lists", "namespace": "k"},
                "stream_state": {"updated": utc(older)},
            },
        },
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": "lists"}, "stream_state": {"updated": utc(old)}}},
    ]
    serve(api, "lists", [])
    output = run_read(
        config(),
        {"lists": SyncMode.incremental},
        state=[AirbyteStateMessageSerializer.load(message) for message in messages],
        now=now,
    )
    assert [start for start, _ in windows(api)] == [old], "the last state of the stream is used"
    logs = all_output(output)
    assert "names the namespace 'k'" in logs and "more than one state of stream lists" in logs


def test_a_window_that_ends_before_it_starts_is_dropped_and_overlapping_ones_merged_each_with_a_warning(api, now):
    day = timedelta(days=1)
    slices = [
        {"start": utc(now - 400 * day), "end": utc(now - 300 * day)},
        {"start": utc(now - 350 * day), "end": utc(now - 200 * day)},  # overlaps the first
        {"start": utc(now - 10 * day), "end": utc(now - 100 * day)},  # inverted
    ]
    serve(api, "templates", [])
    output = read(api, "templates", now, state_of("templates", {"state_type": "date-range", "slices": slices}))
    assert windows(api) == [(now - 200 * day, now)], "everything after the merged window is read again"
    logs = all_output(output)
    assert "ends before it starts" in logs and "overlap; they are read as one" in logs


def test_a_full_refresh_of_an_incremental_stream_ignores_its_state(api, now):
    serve(api, "templates", [now - timedelta(days=3)])
    output = run_read(
        config(), {"templates": SyncMode.full_refresh}, state_of("templates", {"updated": utc(now)}), now=now
    )
    assert [start for start, _ in windows(api)] == [(now - timedelta(days=730)).replace(microsecond=0)]
    assert len(output.records) == 1


def test_all_history_starts_in_klaviyos_first_year(api, now):
    serve(api, "templates", [])
    read(api, "templates", now, backfill_window_days={"templates": 0})
    assert [start for start, _ in windows(api)] == [KLAVIYO_EPOCH]


@pytest.mark.parametrize("stream", ["lists", "segments"])
def test_greater_than_only_streams_leave_records_updated_after_the_window_for_the_next_sync(api, stream, now):
    earlier, later = now - timedelta(days=3), now + timedelta(hours=1)
    serve_pages(api, stream, [[sample(stream, 1, iso(earlier)), sample(stream, 2, iso(later))]])
    output = read(api, stream, now)

    assert [record.record.data["updated"] for record in output.records] == [iso(earlier)]
    assert stream_state(output, stream)["slices"][0]["end"] == utc(now)
