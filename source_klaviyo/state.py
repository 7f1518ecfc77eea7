"""Incremental state in one place: its shape, the older shapes it takes over, and where a sync resumes.

Shape. An incremental stream's state is the CDK's date-range state, the windows
already read (merged where they touch):

    {"state_type": "date-range",
     "slices": [{"start": "2026-10-01T00:00:00Z", "end": "2026-10-20T06:00:00Z",
                 "most_recent_cursor_value": "2026-10-20T05:59:58Z"}, ...]}

The CDK's ConcurrentCursor adds a window to it as soon as that window's records
are emitted, whatever other windows are still running, so a killed sync keeps
every finished window. While a sync runs, its STATE also carries
`"unfinished_sync_end"`: the end of the range that sync set out to read. A sync
that resumes from such a state reads only what is missing; a sync after a
finished one also looks back (events: `event_lookback_hours`) for late records.

Older shapes are taken over: `{"<cursor field>": "<datetime>"}` (this
connector's earlier state and the official connector's) becomes one finished
window ending there; a legacy state file (an object of per-stream states) and
LEGACY or GLOBAL state messages become per-stream states. What cannot be used
is dropped with a warning that names it: that stream then reads as on a first
sync, which re-reads but never skips.

Resume rules (`build_cursor`):
- without state, a sync starts at the stream's backfill start (the later of its
  window and `start_date`; Klaviyo's first year when both are open);
- with state, however old, it reads the gaps between finished windows and from
  the end of the last one to now; the backfill window no longer applies,
  `start_date` still bounds everything;
- after a finished sync, "the end of the last one" is its newest record (a
  record Klaviyo shows a moment late is not skipped), minus the lookback;
  after an interrupted one, it is the end of the last window finished;
- a full refresh ignores state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airbyte_cdk.models import AirbyteStateBlob as Blob
from airbyte_cdk.models import (
    AirbyteStateMessage,
    AirbyteStateType,
    AirbyteStreamState,
    StreamDescriptor,
)
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams import NO_CURSOR_STATE_KEY
from airbyte_cdk.sources.streams.concurrent.cursor import ConcurrentCursor, Cursor, CursorField
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.streams.concurrent.state_converters.datetime_stream_state_converter import (
    IsoMillisConcurrentStreamStateConverter,
)
from airbyte_cdk.sources.types import Record

from source_klaviyo.clock import (
    EARLIEST_DATE,
    KLAVIYO_EPOCH,
    LATEST_DATE,
    format_klaviyo_datetime,
    parse_klaviyo_datetime,
)

logger = logging.getLogger("airbyte")
SLICE_START, SLICE_END, MOST_RECENT = "start", "end", "most_recent_cursor_value"
UNFINISHED = "unfinished_sync_end"
# Clocks disagree a little; a state this far past now is no clock skew but a state that would skip data.
FUTURE_TOLERANCE = timedelta(days=1)


class KlaviyoDatetimeConverter(IsoMillisConcurrentStreamStateConverter):
    """Date-range state at second precision with a `Z`, the way Klaviyo's filters take datetimes.

    Parsing uses `datetime.fromisoformat`: the base class's dateutil parse costs
    tens of microseconds and runs once per record. A state written before the sync
    has covered its whole range is marked with that range's end (UNFINISHED).
    """

    def __init__(self, sync_end: datetime) -> None:
        super().__init__(is_sequential_state=False)
        self._sync_end = sync_end

    def parse_timestamp(self, timestamp: Any) -> datetime:
        try:
            return parse_klaviyo_datetime(timestamp)
        except (TypeError, ValueError, AttributeError):
            return super().parse_timestamp(timestamp)

    def output_format(self, timestamp: datetime) -> str:
        return format_klaviyo_datetime(timestamp)

    def convert_to_state_message(self, cursor_field: CursorField, stream_state: MutableMapping[str, Any]) -> Any:
        state = super().convert_to_state_message(cursor_field, stream_state)
        merged = self.merge_intervals([dict(piece) for piece in stream_state.get("slices", [])])
        if len(merged) != 1 or merged[0][self.END_KEY] < self._sync_end:
            state[UNFINISHED] = self.output_format(self._sync_end)
        return state


class WindowCursor(ConcurrentCursor):
    """The CDK's ConcurrentCursor, forgetting a window's newest record once the window is in the state.

    The base class keeps that value, keyed by the window's slice, for the whole sync; with a window per
    page it held every page's slice (about 2 KB each) until the end: memory growing with volume."""

    def close_partition(self, partition: Partition) -> None:
        super().close_partition(partition)
        self._most_recent_cursor_value_per_partition.pop(partition.to_slice(), None)


def build_cursor(
    stream_name: str,
    cursor_field: str,
    first_sync_start: datetime | None,
    start_date: datetime | None,
    state_manager: ConnectorStateManager,
    message_repository: MessageRepository,
    now: datetime,
    lookback: timedelta | None = None,
) -> ConcurrentCursor:
    """The stream's cursor, resuming from its state by the rules in this module's docstring.

    `first_sync_start` is the stream's backfill start (None: all history); `lookback`
    is how far a sync after a finished one reads before that one's end.
    """
    state = state_manager.get_stream_state(stream_name, None)
    floor = max(start_date or KLAVIYO_EPOCH, KLAVIYO_EPOCH)
    if not state:
        start = max(first_sync_start or floor, floor)
    elif state.get("state_type"):
        # Never before the first finished window: what lies before it was left out on purpose.
        start = max(floor, min(parse_klaviyo_datetime(piece[SLICE_START]) for piece in state["slices"]))
        if state.get(UNFINISHED):
            lookback = None  # the interrupted sync's own range already held the lookback
        else:
            state = _up_to_newest_record(state)
    else:
        start = floor
    converter = KlaviyoDatetimeConverter(sync_end=now)
    return WindowCursor(
        stream_name=stream_name,
        stream_namespace=None,
        stream_state=state,
        message_repository=message_repository,
        connector_state_manager=state_manager,
        connector_state_converter=converter,
        cursor_field=CursorField(cursor_field),
        slice_boundary_fields=(SLICE_START, SLICE_END),
        start=start,
        end_provider=lambda: now,
        lookback_window=lookback,
    )


def _up_to_newest_record(state: Mapping[str, Any]) -> dict[str, Any]:
    """A finished sync's state, its last window trusted only up to the newest record read in it.

    Klaviyo may show a record a moment after its cursor time; the next sync reads again
    from that record (inclusive, as the old single-value state did) rather than from the
    end of the window, so a record that showed up late is not skipped.
    """
    slices = [dict(piece) for piece in state["slices"]]
    last = max(slices, key=lambda piece: parse_klaviyo_datetime(piece[SLICE_END]))
    newest = last.get(MOST_RECENT)
    if newest and parse_klaviyo_datetime(newest) < parse_klaviyo_datetime(last[SLICE_END]):
        last[SLICE_END] = newest
    return {**state, "slices": slices}


def stream_messages(messages: Iterable[AirbyteStateMessage]) -> list[AirbyteStateMessage]:
    """The input state as per-stream STATE messages: LEGACY and GLOBAL messages are taken apart.

    A GLOBAL message's shared state means nothing to this connector's streams, and
    a LEGACY message's `data` holds per-stream states only when it is an object of
    objects; whatever is left out is named in a warning.
    """
    streams: list[AirbyteStateMessage] = []
    for message in messages:
        if message.type == AirbyteStateType.GLOBAL and message.global_:
            shared = message.global_.shared_state
            if shared and shared.__dict__:
                logger.warning(
                    f"Dropping the shared part of a GLOBAL state ({sorted(shared.__dict__)}): "
                    "this connector keeps its state per stream."
                )
            streams += [
                per_stream(item.stream_descriptor.name, item.stream_state)
                for item in message.global_.stream_states or []
            ]
        elif message.type in (AirbyteStateType.LEGACY, None) and message.data is not None:
            streams += legacy_streams(message.data, "a LEGACY state message")
        elif message.stream:
            streams.append(message)
        else:
            logger.warning(f"Dropping a {message.type} state message that holds no stream's state.")
    return streams


def legacy_streams(data: Any, where: str) -> list[AirbyteStateMessage]:
    """Per-stream messages from an object mapping stream names to their states (the pre-2022 shape)."""
    if not isinstance(data, Mapping) or not all(isinstance(value, Mapping) for value in data.values()):
        logger.warning(f"Dropping {where}: it is not an object of per-stream states, so no stream can resume from it.")
        return []
    logger.warning(f"Reading {where} (an object of per-stream states) as one state per stream: {sorted(data)}.")
    return [per_stream(name, value) for name, value in data.items()]


def per_stream(name: str, state: Any) -> AirbyteStateMessage:
    blob = state if isinstance(state, Blob) else Blob(**dict(state or {}))
    return AirbyteStateMessage(
        type=AirbyteStateType.STREAM,
        stream=AirbyteStreamState(stream_descriptor=StreamDescriptor(name=name), stream_state=blob),
    )


@dataclass(frozen=True)
class Resumes:
    """How a stream of this read resumes: by its cursor field, per parent when it has a parent field.

    `cursor_field` None: a per-parent full refresh, which resumes only an interrupted sync.
    """

    cursor_field: str | None
    parent_field: str | None = None


def resumable(
    messages: list[AirbyteStateMessage], rules: Mapping[str, Resumes], now: datetime
) -> list[AirbyteStateMessage]:
    """The states the streams of this read can resume from; each other one is dropped with a warning.

    `rules` holds the streams that resume; any other stream (a full refresh) reads
    in full. A state another cursor wrote, whose values are not datetimes, or that
    lies in the future would resume from the wrong place, so that stream reads as
    on a first sync instead.
    """
    usable = []
    for message in messages:
        name = message.stream.stream_descriptor.name
        state = dict(message.stream.stream_state.__dict__)
        rule = rules.get(name)
        if rule is None or (rule.cursor_field is None and not state.get(UNFINISHED)):
            logger.info(f"Stream {name} is read in full; its state is not used.")
            continue
        check = _parents_problem if rule.parent_field else _problem
        problem = check(state, rule, now + FUTURE_TOLERANCE)
        if problem:
            logger.warning(f"Ignoring the state of stream {name}: {problem}. It is read as on a first sync.")
            continue
        usable.append(message)
    return usable


def _parents_problem(state: Mapping[str, Any], rule: Resumes, latest: datetime) -> str | None:
    entries = state.get("states")
    if not isinstance(entries, list) or not all(
        isinstance(entry, Mapping)
        and isinstance(entry.get("partition"), Mapping)
        and isinstance(entry["partition"].get(rule.parent_field), str)
        and isinstance(entry.get("cursor"), Mapping)
        for entry in entries
    ):
        return f"it is not a list of per-{rule.parent_field} states"
    if rule.cursor_field is None:
        return None
    values = [entry["cursor"].get(rule.cursor_field) for entry in entries]
    return _values_problem(values, f"its `{rule.cursor_field}` values", latest)


def _problem(state: Mapping[str, Any], rule: Resumes, latest: datetime) -> str | None:
    cursor = rule.cursor_field
    if not state:
        return None
    if "state_type" in state:
        slices = state.get("slices")
        pieces = slices if isinstance(slices, list) and slices else [None]
        if state["state_type"] != "date-range" or not all(
            isinstance(piece, Mapping) and {SLICE_START, SLICE_END} <= set(piece) for piece in pieces
        ):
            return "it is not a date-range state with {start, end} slices"
        values = [piece[key] for piece in pieces for key in (SLICE_START, SLICE_END)]
        if UNFINISHED in state:
            values.append(state[UNFINISHED])
        return _values_problem(values, "its date-range slices", latest)
    if cursor not in state:
        return f"it has no `{cursor}` value (it holds {sorted(state)})"
    return _values_problem([state[cursor]], f"its `{cursor}`", latest)


def _values_problem(values: list[Any], what: str, latest: datetime) -> str | None:
    moments = [_datetime(value) for value in values]
    if None in moments:
        return f"{what} are not all datetimes between 1970 and 2100 ({values[moments.index(None)]!r})"
    if moments and max(moments) > latest:
        return f"{what} reach into the future ({format_klaviyo_datetime(max(moments))})"
    return None


def _datetime(value: Any) -> datetime | None:
    try:
        moment = parse_klaviyo_datetime(value)
    except (TypeError, ValueError, AttributeError):
        return None
    return moment if EARLIEST_DATE <= moment < LATEST_DATE else None


class ParentCursor(Cursor):
    """The state of a per-parent stream, in the CDK's per-partition shape:

        {"states": [{"partition": {"list_id": "Y6nRLr"}, "cursor": {"joined_group_at": "2026-10-01T08:00:00Z"}}]}

    metric_aggregates keeps the same shape with its queries as the parents and the
    start of the newest interval read as the cursor; the stream re-reads each query's
    last `reread_intervals` intervals up to it (never before the query's range):

        {"states": [{"partition": {"query_name": "revenue_by_flow"}, "cursor": {"date": "2026-10-19T04:00:00Z"}}]}

    Incremental: each parent's newest cursor value, saved as soon as that parent is
    read; the next sync reads each parent from there (inclusive), a parent without
    state from the stream's first-sync start. Full refresh: while a sync runs, the
    parents it finished (with empty cursors) and UNFINISHED, so a resumed sync skips
    them; a finished sync leaves the CDK's no-cursor state and the next starts over.
    """

    def __init__(
        self,
        stream_name: str,
        parent_field: str,
        cursor_field: str | None,
        state_manager: ConnectorStateManager,
        message_repository: MessageRepository,
        first_sync_start: datetime | None,
        start_date: datetime | None,
        now: datetime,
    ) -> None:
        self._name, self._parent_field, self._cursor_field = stream_name, parent_field, cursor_field
        self._state_manager, self._repository = state_manager, message_repository
        self._first_sync_start, self._start_date, self._now = first_sync_start, start_date, now
        state = state_manager.get_stream_state(stream_name, None)
        self._values: dict[str, str] = {
            entry["partition"][parent_field]: entry["cursor"].get(cursor_field or "", "")
            for entry in state.get("states", [])
        }
        self._resuming = bool(state.get(UNFINISHED))
        self._newest: dict[int, datetime] = {}  # id(slice) -> newest cursor value read for that parent
        self._planned = self._closed = 0
        self._planning_done = False
        self._lock = threading.Lock()

    @property
    def state(self) -> MutableMapping[str, Any]:
        if self._cursor_field is None and self._complete():
            return {NO_CURSOR_STATE_KEY: True}
        entries = [
            {"partition": {self._parent_field: parent}, "cursor": {self._cursor_field: value} if value else {}}
            for parent, value in sorted(self._values.items())
        ]
        state: dict[str, Any] = {"states": entries}
        if self._cursor_field is None:
            state[UNFINISHED] = format_klaviyo_datetime(self._now)
        return state

    def since(self, parent_id: str) -> datetime | None:
        """Where this sync reads the parent from: its state, else the first-sync start (None: all of it);
        never before `start_date`."""
        value = self._values.get(parent_id) if self._cursor_field else None
        since = parse_klaviyo_datetime(value) if value else self._first_sync_start
        bounds = [bound for bound in (since, self._start_date) if bound is not None]
        return max(bounds) if bounds else None

    def finished(self, parent_id: str) -> bool:
        """Whether the interrupted full refresh this sync resumes has read the parent already."""
        return self._resuming and parent_id in self._values

    def planned(self) -> None:
        with self._lock:
            self._planned += 1

    def planning_done(self) -> None:
        with self._lock:
            self._planning_done = True

    def observe(self, record: Record) -> None:
        if self._cursor_field is None:
            return
        value = record.data.get(self._cursor_field)
        if value:
            key = id(record.associated_slice)
            moment = parse_klaviyo_datetime(value)
            if key not in self._newest or moment > self._newest[key]:
                self._newest[key] = moment

    def close_partition(self, partition: Partition) -> None:
        parent_slice = partition.to_slice()
        with self._lock:
            self._closed += 1
            newest = self._newest.pop(id(parent_slice), None)
            parent = parent_slice["parent_id"]
            if newest is not None:
                self._values[parent] = format_klaviyo_datetime(newest)
            elif self._cursor_field is None or parent not in self._values:
                self._values[parent] = ""
            self._emit()

    def ensure_at_least_one_state_emitted(self) -> None:
        with self._lock:
            self._emit()

    def should_be_synced(self, record: Record) -> bool:
        return True

    def _complete(self) -> bool:
        return self._planning_done and self._closed == self._planned

    def _emit(self) -> None:
        self._state_manager.update_state_for_stream(self._name, None, self.state)
        self._repository.emit_message(self._state_manager.create_state_message(self._name, None))


class ReportCursor(Cursor):
    """The state of a Reporting API stream: how far its report dates are read, and the day's requests.

        {"date": "2026-11-30T09:15:00-05:00", "quota": {"day": "2026-11-30", "spent": 9}}

    The cursor value (`date` for series, `start` for values reports) is where the
    last sync's reading ended, in the account's timezone. The next sync reads again
    from `reporting_lookback_days` before it (Klaviyo revises conversions after a
    send); a sync the daily quota stopped wrote UNFINISHED, and the next one goes on
    from exactly there. `quota` counts the requests of the UTC day (see the README),
    so syncs of one day together spend no more than the endpoint's daily limit.
    """

    def __init__(
        self,
        stream_name: str,
        cursor_field: str,
        state_manager: ConnectorStateManager,
        message_repository: MessageRepository,
        now: datetime,
    ) -> None:
        self._name, self._cursor_field = stream_name, cursor_field
        self._state_manager, self._repository = state_manager, message_repository
        self._day = now.astimezone(timezone.utc).date().isoformat()
        state = state_manager.get_stream_state(stream_name, None)
        value = state.get(cursor_field)
        self._read_to: datetime | None = parse_klaviyo_datetime(value) if value else None
        self._resuming = bool(state.get(UNFINISHED))
        quota = state.get("quota") if isinstance(state.get("quota"), Mapping) else {}
        spent = quota.get("spent") if quota.get("day") == self._day else 0
        self.spent = spent if isinstance(spent, int) and not isinstance(spent, bool) and spent >= 0 else 0
        self._unfinished: datetime | None = None

    def resume_from(self, lookback: timedelta) -> datetime | None:
        """Where this sync reads from (None: no state, the first-sync start)."""
        if self._read_to is None or self._resuming:
            return self._read_to
        return self._read_to - lookback

    def spend(self) -> None:
        self.spent += 1

    def advance(self, read_to: datetime, finished: bool) -> None:
        """The period up to `read_to` is emitted; `finished`: it was the sync's last."""
        self._read_to, self._unfinished = read_to, None if finished else read_to
        self._emit()

    def stopped(self, at: datetime) -> None:
        """The day's quota ran out with the period starting `at` unread: the next sync goes on from there."""
        self._read_to = self._unfinished = at
        self._emit()

    @property
    def state(self) -> MutableMapping[str, Any]:
        state: dict[str, Any] = {"quota": {"day": self._day, "spent": self.spent}}
        if self._read_to is not None:
            state[self._cursor_field] = self._read_to.isoformat()
        if self._unfinished is not None:
            state[UNFINISHED] = self._unfinished.isoformat()
        return state

    def observe(self, record: Record) -> None:
        pass  # progress moves per period (`advance`), not per record

    def close_partition(self, partition: Partition) -> None:
        self._emit()

    def ensure_at_least_one_state_emitted(self) -> None:
        self._emit()

    def should_be_synced(self, record: Record) -> bool:
        return True

    def _emit(self) -> None:
        self._state_manager.update_state_for_stream(self._name, None, self.state)
        self._repository.emit_message(self._state_manager.create_state_message(self._name, None))
