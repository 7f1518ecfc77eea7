"""Per-parent streams: how many parents run at once, and the state each parent keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airbyte_cdk.models import AirbyteStateMessageSerializer
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.streams import NO_CURSOR_STATE_KEY
from airbyte_cdk.sources.types import Record

from source_klaviyo import state as state_module
from source_klaviyo.clock import format_klaviyo_datetime, parse_klaviyo_datetime
from source_klaviyo.config import parse_config
from source_klaviyo.parents import parents_at_once
from source_klaviyo.planning import IdentitySlice, ParentPage, ResumePoint
from source_klaviyo.state import KEYS_AT_CURSOR, NEXT_PAGE, UNFINISHED, ParentCursor
from source_klaviyo.streams.audiences import ListMemberships
from source_klaviyo.streams.context import StreamContext
from unit_tests.klaviyo_mock import NOW, config


@pytest.mark.parametrize(
    "steady, workers, expected",
    [(60, 10, 2), (150, 10, 2), (750, 10, 4), (3500, 10, 10), (60, 1, 1), (3500, 50, 15)],
    ids=["flows-tier", "campaigns-tier", "lists-tier", "xl-tier", "one-worker", "many-workers"],
)
def test_parents_run_only_as_many_at_once_as_their_endpoints_steady_limit_can_keep_busy(steady, workers, expected):
    assert parents_at_once(steady, workers) == expected


@pytest.mark.parametrize("share, at_once", [(1.0, 4), (0.5, 2)])
def test_parents_are_planned_on_the_connector_s_share_of_the_steady_limit(share, at_once):
    """Member lists allow 750 requests a minute: at half of it, two parents keep the endpoint at its share."""
    stream = ListMemberships(StreamContext(parse_config(config(rate_limit_share=share), NOW), None, NOW))
    assert parents_at_once(stream.steady_per_minute, 10) == at_once


class Partition:
    """What the cursor needs of a parent's partition: its slice."""

    def __init__(self, parent_id: str) -> None:
        self._slice = IdentitySlice({"parent_id": parent_id})

    def to_slice(self) -> IdentitySlice:
        return self._slice


def cursor(state=None, cursor_field="joined_group_at", first_sync_start=None, start_date=None):
    """A list_memberships cursor over `state` (a STREAM state of the stream, or a list of STATE messages)."""
    if isinstance(state, dict):
        state = [
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "list_memberships"}, "stream_state": state}}
        ]
    messages = [AirbyteStateMessageSerializer.load(message) for message in state or []]
    repository = InMemoryMessageRepository()
    parent_cursor = ParentCursor(
        stream_name="list_memberships",
        parent_field="list_id",
        cursor_field=cursor_field,
        state_manager=ConnectorStateManager(messages),
        message_repository=repository,
        now=NOW,
        first_sync_start=first_sync_start,
        start_date=start_date,
    )
    return parent_cursor, repository


def read(parent_cursor, parent_id, *pages, close=True):
    """The parent's pages of `joined_group_at` values (members `<parent>-<page>-<n>`), as the planner hands them to
    the cursor: the CDK observes each page's newest record, then the page is read; the parent is then closed."""
    partition = Partition(parent_id)
    for number, values in enumerate(pages):
        records = [
            {"profile_id": f"{parent_id}-{number}-{n}", "joined_group_at": value} for n, value in enumerate(values)
        ]
        if records:
            newest = max(records, key=lambda record: record["joined_group_at"])
            parent_cursor.observe(Record(newest, "list_memberships", partition.to_slice()))
        next_page = link(parent_id, number + 1) if number < len(pages) - 1 or not close else ""
        parent_cursor.page_read(partition.to_slice(), page_of(records, next_page))
    if close:
        parent_cursor.close_partition(partition)


def page_of(records, next_page):
    if not records:
        return ParentPage(records, next_page)
    newest = max(record["joined_group_at"] for record in records)
    keys = tuple(record["profile_id"] for record in records if record["joined_group_at"] == newest)
    return ParentPage(records, next_page, parse_klaviyo_datetime(newest), keys)


def link(parent_id: str, page: int) -> str:
    return f"api/lists/{parent_id}/profiles?page%5Bcursor%5D={page}"


def states(repository):
    return [dict(message.state.stream.stream_state.__dict__) for message in repository.consume_queue()]


def at(days_ago: float) -> str:
    return format_klaviyo_datetime(NOW - timedelta(days=days_ago))


def test_each_parent_keeps_its_newest_value_saved_as_soon_as_it_is_read():
    parent_cursor, repository = cursor()
    read(parent_cursor, "A", [at(5), at(3), at(2), at(2)])
    read(parent_cursor, "B", [])  # no members yet
    a = {"partition": {"list_id": "A"}, "cursor": {"joined_group_at": at(2)}, KEYS_AT_CURSOR: ["A-0-2", "A-0-3"]}
    assert states(repository) == [{"states": [a]}, {"states": [a, {"partition": {"list_id": "B"}, "cursor": {}}]}]


def test_a_parent_resumes_from_its_value_a_new_one_from_the_first_sync_start_and_never_before_start_date():
    state = [
        {
            "type": "STREAM",
            "stream": {
                "stream_descriptor": {"name": "list_memberships"},
                "stream_state": {
                    "states": [
                        {"partition": {"list_id": "A"}, "cursor": {"joined_group_at": at(40)}},
                        {"partition": {"list_id": "B"}, "cursor": {"joined_group_at": at(2)}},
                    ]
                },
            },
        }
    ]
    parent_cursor, _ = cursor(state, first_sync_start=NOW - timedelta(days=90), start_date=NOW - timedelta(days=10))
    assert format_klaviyo_datetime(parent_cursor.since("A")) == at(10), "start_date bounds everything"
    assert format_klaviyo_datetime(parent_cursor.since("B")) == at(2)
    assert format_klaviyo_datetime(parent_cursor.since("C")) == at(10)
    read(parent_cursor, "B", [])
    assert parent_cursor.state["states"][1] == {"partition": {"list_id": "B"}, "cursor": {"joined_group_at": at(2)}}
    assert parent_cursor.resume_point("B") == ResumePoint(NOW - timedelta(days=2)), "no keys kept: all read again"


def test_a_full_refresh_marks_the_parents_it_finished_until_all_are_then_starts_over():
    parent_cursor, repository = cursor(cursor_field=None)
    for _ in range(2):
        parent_cursor.planned()
    parent_cursor.planning_done()
    read(parent_cursor, "A", [])
    (running,) = states(repository)
    assert running == {
        "states": [{"partition": {"list_id": "A"}, "cursor": {}}],
        UNFINISHED: format_klaviyo_datetime(NOW),
    }

    resumed, _ = cursor(running, cursor_field=None)
    assert resumed.resume_point("A") is None and resumed.resume_point("B"), "a resumed sync skips what was read"

    read(parent_cursor, "B", [])
    assert states(repository) == [{NO_CURSOR_STATE_KEY: True}], "a finished full refresh leaves no progress"
    fresh, _ = cursor({NO_CURSOR_STATE_KEY: True}, cursor_field=None)
    assert fresh.resume_point("A") == ResumePoint(None)


def test_a_parent_read_page_by_page_saves_each_page_and_a_resumed_sync_goes_on_from_the_next_page():
    """Incremental: each page's newest value and the next page's link, so a kill inside a large list loses at most
    the pages in flight; the link is dropped once the parent is finished."""
    parent_cursor, repository = cursor()
    read(parent_cursor, "A", [at(9), at(8)], [at(7), at(6)], close=False)
    after_pages = states(repository)
    assert [state["states"][0] for state in after_pages] == [
        {
            "partition": {"list_id": "A"},
            "cursor": {"joined_group_at": at(8)},
            KEYS_AT_CURSOR: ["A-0-1"],
            NEXT_PAGE: link("A", 1),
        },
        {
            "partition": {"list_id": "A"},
            "cursor": {"joined_group_at": at(6)},
            KEYS_AT_CURSOR: ["A-1-1"],
            NEXT_PAGE: link("A", 2),
        },
    ]
    resumed, _ = cursor(after_pages[-1])
    assert resumed.resume_point("A") == ResumePoint(NOW - timedelta(days=6), link("A", 2))

    parent_cursor.close_partition(Partition("A"))
    assert parent_cursor.state["states"] == [
        {"partition": {"list_id": "A"}, "cursor": {"joined_group_at": at(6)}, KEYS_AT_CURSOR: ["A-1-1"]}
    ]


def test_an_interrupted_full_refresh_resumes_inside_the_parent_it_was_reading():
    parent_cursor, repository = cursor(cursor_field=None)
    parent_cursor.planned()
    read(parent_cursor, "A", [at(9)], [at(8)], close=False)
    running = states(repository)[-1]
    assert running == {
        "states": [{"partition": {"list_id": "A"}, "cursor": {}, NEXT_PAGE: link("A", 2)}],
        UNFINISHED: at(0),
    }
    resumed, _ = cursor(running, cursor_field=None)
    assert resumed.resume_point("A") == ResumePoint(None, link("A", 2))


def test_with_many_parents_state_goes_out_every_few_pages_and_always_when_the_stream_ends(monkeypatch):
    """Each STATE lists every parent: with 120 parents (2 per step here), every third page or parent finished."""
    monkeypatch.setattr(state_module, "PARENTS_PER_STATE_STEP", 2)
    known = {
        "states": [{"partition": {"list_id": f"L{n:03}"}, "cursor": {"joined_group_at": at(30)}} for n in range(5)]
    }
    parent_cursor, repository = cursor(known)
    read(parent_cursor, "A", [at(9)], [at(8)], [at(7)])  # two pages and the parent: 3 steps of 6 parents / 2
    read(parent_cursor, "B", [at(5)])
    (after_a,) = states(repository)
    assert after_a["states"][0]["cursor"] == {"joined_group_at": at(7)} and NEXT_PAGE not in after_a["states"][0]
    parent_cursor.ensure_at_least_one_state_emitted()
    (final,) = states(repository)
    assert final["states"][1]["cursor"] == {"joined_group_at": at(5)}


def test_a_parent_finished_before_is_read_again_from_its_newest_value_less_the_children_delivered_at_it():
    """An unchanged parent sends nothing again, and a member Klaviyo shows a moment late in that same second is
    still read (a `greater-than` filter would lose it)."""
    entry = {"partition": {"list_id": "A"}, "cursor": {"joined_group_at": at(3)}, KEYS_AT_CURSOR: ["p1", "p2"]}
    parent_cursor, _ = cursor({"states": [entry]})
    assert parent_cursor.resume_point("A") == ResumePoint(NOW - timedelta(days=3), skip=frozenset({"p1", "p2"}))
    bounded, _ = cursor(
        {"states": [{**entry, "cursor": {"joined_group_at": at(30)}}]}, start_date=NOW - timedelta(days=10)
    )
    assert bounded.resume_point("A") == ResumePoint(NOW - timedelta(days=10)), "start_date is read whole"


def test_a_second_with_more_children_than_are_kept_is_read_again_whole(monkeypatch):
    """A bulk import puts thousands of members in one second: their keys are not kept, and the next sync sends
    them again (duplicates, never a loss)."""
    monkeypatch.setattr(state_module, "MAX_KEYS_AT_CURSOR", 3)
    parent_cursor, _ = cursor()
    read(parent_cursor, "A", [at(5), at(4), at(4)], [at(4), at(4)])
    (entry,) = parent_cursor.state["states"]
    assert entry == {"partition": {"list_id": "A"}, "cursor": {"joined_group_at": at(4)}}


def test_a_parent_whose_state_lies_at_or_after_now_is_not_read():
    parent_cursor, _ = cursor({"states": [{"partition": {"list_id": "A"}, "cursor": {"joined_group_at": at(-30)}}]})
    assert parent_cursor.resume_point("A") is None
    assert parent_cursor.resume_point("B") == ResumePoint(None)
