"""Per-parent streams: how many parents run at once, and the state each parent keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airbyte_cdk.models import AirbyteStateMessageSerializer
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.streams import NO_CURSOR_STATE_KEY
from airbyte_cdk.sources.types import Record

from source_klaviyo.clock import format_klaviyo_datetime
from source_klaviyo.parents import parents_at_once
from source_klaviyo.planning import IdentitySlice
from source_klaviyo.state import UNFINISHED, ParentCursor
from unit_tests.klaviyo_mock import NOW


@pytest.mark.parametrize(
    "steady, workers, expected",
    [(60, 10, 2), (150, 10, 2), (750, 10, 4), (3500, 10, 10), (60, 1, 1), (3500, 50, 15)],
    ids=["flows-tier", "campaigns-tier", "lists-tier", "xl-tier", "one-worker", "many-workers"],
)
def test_parents_run_only_as_many_at_once_as_their_endpoints_steady_limit_can_keep_busy(steady, workers, expected):
    assert parents_at_once(steady, workers) == expected


class Partition:
    """What the cursor needs of a parent's partition: its slice."""

    def __init__(self, parent_id: str) -> None:
        self._slice = IdentitySlice({"parent_id": parent_id})

    def to_slice(self) -> IdentitySlice:
        return self._slice


def cursor(state=None, cursor_field="joined_group_at", first_sync_start=None, start_date=None):
    messages = [AirbyteStateMessageSerializer.load(message) for message in state or []]
    repository = InMemoryMessageRepository()
    parent_cursor = ParentCursor(
        "list_memberships",
        "list_id",
        cursor_field,
        ConnectorStateManager(messages),
        repository,
        first_sync_start,
        start_date,
        NOW,
    )
    return parent_cursor, repository


def read(parent_cursor, parent_id, *values):
    partition = Partition(parent_id)
    for value in values:
        parent_cursor.observe(Record({"joined_group_at": value}, "list_memberships", partition.to_slice()))
    parent_cursor.close_partition(partition)


def states(repository):
    return [dict(message.state.stream.stream_state.__dict__) for message in repository.consume_queue()]


def at(days_ago: float) -> str:
    return format_klaviyo_datetime(NOW - timedelta(days=days_ago))


def test_each_parent_keeps_its_newest_value_saved_as_soon_as_it_is_read():
    parent_cursor, repository = cursor()
    read(parent_cursor, "A", at(5), at(2), at(3))
    read(parent_cursor, "B")  # no members yet
    assert states(repository) == [
        {"states": [{"partition": {"list_id": "A"}, "cursor": {"joined_group_at": at(2)}}]},
        {
            "states": [
                {"partition": {"list_id": "A"}, "cursor": {"joined_group_at": at(2)}},
                {"partition": {"list_id": "B"}, "cursor": {}},
            ]
        },
    ]


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
    read(parent_cursor, "B")
    assert parent_cursor.state["states"][1] == {"partition": {"list_id": "B"}, "cursor": {"joined_group_at": at(2)}}


def test_a_full_refresh_marks_the_parents_it_finished_until_all_are_then_starts_over():
    parent_cursor, repository = cursor(cursor_field=None)
    for _ in range(2):
        parent_cursor.planned()
    parent_cursor.planning_done()
    read(parent_cursor, "A")
    (running,) = states(repository)
    assert running == {
        "states": [{"partition": {"list_id": "A"}, "cursor": {}}],
        UNFINISHED: format_klaviyo_datetime(NOW),
    }

    resumed, _ = cursor(
        [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "list_memberships"}, "stream_state": running}}],
        cursor_field=None,
    )
    assert resumed.finished("A") and not resumed.finished("B"), "a resumed sync skips what was read"

    read(parent_cursor, "B")
    assert states(repository) == [{NO_CURSOR_STATE_KEY: True}], "a finished full refresh leaves no progress"
    fresh, _ = cursor(
        [
            {
                "type": "STREAM",
                "stream": {
                    "stream_descriptor": {"name": "list_memberships"},
                    "stream_state": {NO_CURSOR_STATE_KEY: True},
                },
            }
        ],
        cursor_field=None,
    )
    assert not fresh.finished("A")
