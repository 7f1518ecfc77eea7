"""The state this connector writes, and where each stream resumes from it.

Windowed and dated streams. An incremental stream's state is the CDK's
date-range state, the windows already read (merged where they touch):

    {"state_type": "date-range",
     "slices": [{"start": "2026-10-01T00:00:00Z", "end": "2026-10-20T06:00:00Z",
                 "most_recent_cursor_value": "2026-10-20T05:59:58Z"}, ...]}

The CDK's ConcurrentCursor adds a window to it as soon as that window's records
are emitted, whatever other windows are still running, so a killed sync keeps
every finished window. While a sync runs, its STATE also carries
`"unfinished_sync_end"`: the end of the range that sync set out to read. A sync
that resumes from such a state reads only what is missing; a sync after a
finished one also looks back (events: `event_lookback_hours`) for late records.
The single-value shape `{"<cursor field>": "<datetime>"}` (this connector's
earlier state and the official connector's) is one finished window ending there.
incoming_state.py turns what a platform sends into these shapes.

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

Per-parent streams and Reporting API streams keep the shapes of `ParentCursor`
and `ReportCursor` below.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams import NO_CURSOR_STATE_KEY
from airbyte_cdk.sources.streams.concurrent.cursor import ConcurrentCursor, Cursor, CursorField
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.streams.concurrent.state_converters.datetime_stream_state_converter import (
    IsoMillisConcurrentStreamStateConverter,
)
from airbyte_cdk.sources.types import Record

from source_klaviyo.clock import KLAVIYO_EPOCH, format_klaviyo_datetime, parse_klaviyo_datetime
from source_klaviyo.planning import PARENT, ParentPage, ResumePoint

SLICE_START, SLICE_END, MOST_RECENT = "start", "end", "most_recent_cursor_value"
UNFINISHED = "unfinished_sync_end"
# In a per-parent state: the link (path and query) of the next page of a parent whose read was interrupted...
NEXT_PAGE = "next_page"
# ...and the keys of the children at the parent's newest cursor value, which the next sync reads again (a child
# Klaviyo shows a moment late may share that second) and leaves out. Past this many keys (a bulk import in one
# second) none is kept: those children are then sent again, never lost.
KEYS_AT_CURSOR = "keys_at_cursor"
MAX_KEYS_AT_CURSOR = 1_000
# A per-parent STATE lists every parent (about 85 bytes each). It goes out after each page or parent finished while
# the stream has up to this many parents, and after every k-th one with k = parents / this: an account with a
# thousand lists writes a STATE every 20 pages (about 40 bytes of state per record) rather than 85 KB a page.
PARENTS_PER_STATE_STEP = 50


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
        # The CDK's datetime cursors take datetimes, which its CursorValueType protocol cannot describe: the
        # protocol's comparisons and `+` take the protocol itself, datetime's take datetimes and timedeltas.
        start=start,  # type: ignore[arg-type]
        end_provider=lambda: now,  # type: ignore[arg-type, return-value]
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


@dataclass
class ParentProgress:
    """How far one parent is read: its newest cursor value and the keys of its children at that value, and while
    it is being read, its next page's link."""

    value: str = ""
    next_page: str = ""
    keys_at_value: tuple[str, ...] = ()

    def page(self, newest: datetime, keys: Sequence[str]) -> None:
        """A page whose newest child is at `newest` (the keys of the children at it)."""
        value = parse_klaviyo_datetime(self.value) if self.value else None
        if value is not None and newest < value:
            return
        merged = (*self.keys_at_value, *keys) if value == newest else tuple(keys)
        self.value = format_klaviyo_datetime(newest)
        self.keys_at_value = tuple(dict.fromkeys(merged)) if len(merged) <= MAX_KEYS_AT_CURSOR else ()


class ParentCursor(Cursor):
    """The state of a per-parent stream, in the CDK's per-partition shape:

        {"states": [{"partition": {"list_id": "Y6nRLr"}, "cursor": {"joined_group_at": "2026-10-01T08:00:00Z"}},
                    {"partition": {"list_id": "Xq2Lm9"}, "cursor": {"joined_group_at": "2026-09-12T10:01:00Z"},
                     "next_page": "api/lists/Xq2Lm9/profiles?filter=...&page%5Bcursor%5D=..."}]}

    metric_aggregates keeps the same shape with its queries as the parents and the
    start of the newest interval read as the cursor; the stream re-reads each query's
    last `reread_intervals` intervals up to it (never before the query's range):

        {"states": [{"partition": {"query_name": "revenue_by_flow"}, "cursor": {"date": "2026-10-19T04:00:00Z"}}]}

    A parent's progress moves page by page: after each page's records are out, its
    newest cursor value, the keys of its children at that value (KEYS_AT_CURSOR) and
    the link of its next page, so a killed sync resumes inside the parent it was
    reading (from that link; from the cursor value, or the parent's start, if Klaviyo
    no longer takes the link). Incremental: the next sync reads each parent from its
    newest value, inclusive, and leaves out the children at that value it delivered:
    an unchanged parent sends nothing again, and a child Klaviyo shows a moment late
    in that same second is still read. A parent without state starts at the stream's
    first-sync start. Full refresh: while a sync runs, the parents it finished (empty
    cursors), those it was reading (their links) and UNFINISHED, so a resumed sync goes
    on where it stopped; a finished sync leaves the CDK's no-cursor state and the next
    starts over. STATE goes out after each page or parent finished (every k-th of them
    with many parents, see PARENTS_PER_STATE_STEP), and when the stream ends.
    """

    def __init__(
        self,
        *,
        stream_name: str,
        parent_field: str,
        cursor_field: str | None,
        state_manager: ConnectorStateManager,
        message_repository: MessageRepository,
        now: datetime,
        first_sync_start: datetime | None = None,
        start_date: datetime | None = None,
    ) -> None:
        self._name, self._parent_field, self._cursor_field = stream_name, parent_field, cursor_field
        self._state_manager, self._repository = state_manager, message_repository
        self._first_sync_start, self._start_date, self._now = first_sync_start, start_date, now
        state = state_manager.get_stream_state(stream_name, None)
        self._parents: dict[str, ParentProgress] = {
            entry["partition"][parent_field]: ParentProgress(
                entry["cursor"].get(cursor_field or "", ""),
                entry.get(NEXT_PAGE, ""),
                tuple(entry.get(KEYS_AT_CURSOR, ())),
            )
            for entry in state.get("states", [])
        }
        self._resuming = bool(state.get(UNFINISHED))
        self._newest: dict[int, datetime] = {}  # id(slice) -> newest cursor value read for that parent
        self._planned = self._closed = 0
        self._planning_done = False
        self._steps = 0  # pages and parents finished since the last STATE
        self._lock = threading.Lock()

    @property
    def state(self) -> MutableMapping[str, Any]:
        if self._cursor_field is None and self._complete():
            return {NO_CURSOR_STATE_KEY: True}
        entries = [
            {
                "partition": {self._parent_field: parent},
                "cursor": {self._cursor_field: progress.value} if self._cursor_field and progress.value else {},
                **({NEXT_PAGE: progress.next_page} if progress.next_page else {}),
                **(
                    {KEYS_AT_CURSOR: list(progress.keys_at_value)}
                    if self._cursor_field and progress.keys_at_value
                    else {}
                ),
            }
            for parent, progress in sorted(self._parents.items())
        ]
        state: dict[str, Any] = {"states": entries}
        if self._cursor_field is None:
            state[UNFINISHED] = format_klaviyo_datetime(self._now)
        return state

    def since(self, parent_id: str) -> datetime | None:
        """Where this sync reads the parent from when it starts it afresh: its newest value (incremental), else the
        first-sync start (None: all of it); never before `start_date`."""
        progress = self._parents.get(parent_id)
        value = progress.value if progress and self._cursor_field else ""
        since = parse_klaviyo_datetime(value) if value else self._first_sync_start
        bounds = [bound for bound in (since, self._start_date) if bound is not None]
        return max(bounds) if bounds else None

    def resume_point(self, parent_id: str) -> ResumePoint | None:
        """Where this sync reads the parent from; None when there is nothing to read: the interrupted full refresh
        this sync resumes finished it, or its state lies at or after now (a state in the future reads nothing)."""
        progress = self._parents.get(parent_id)
        if progress and progress.next_page and (self._cursor_field or self._resuming):
            return ResumePoint(self.since(parent_id), progress.next_page)
        if self._cursor_field is None and self._resuming and progress is not None:
            return None
        since = self.since(parent_id)
        if since is not None and since >= self._now:
            return None
        finished_at = parse_klaviyo_datetime(progress.value) if progress and progress.value else None
        delivered = frozenset(progress.keys_at_value) if progress and since == finished_at else frozenset()
        return ResumePoint(since, skip=delivered)

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

    def page_read(self, parent_slice: Mapping[str, Any], page: ParentPage) -> None:
        """A page of the parent is out (its records are queued ahead of any STATE emitted from now on)."""
        with self._lock:
            progress = self._parents.setdefault(parent_slice[PARENT], ParentProgress())
            if self._cursor_field and page.newest is not None:
                progress.page(page.newest, page.keys_at_newest)
            progress.next_page = page.next_page
            if page.next_page:
                self._step()  # (the last page's progress goes out with its parent, closed right after it)

    def close_partition(self, partition: Partition) -> None:
        parent_slice = partition.to_slice()
        assert parent_slice is not None, "a per-parent partition's slice names its parent"
        with self._lock:
            self._closed += 1
            progress = self._parents.setdefault(parent_slice[PARENT], ParentProgress())
            newest = self._newest.pop(id(parent_slice), None)
            if newest is not None:
                progress.page(newest, ())  # a parent read without pages (metric_aggregates' queries)
            progress.next_page = ""
            self._step()

    def ensure_at_least_one_state_emitted(self) -> None:
        with self._lock:
            self._emit()

    def should_be_synced(self, record: Record) -> bool:
        return True

    def _complete(self) -> bool:
        return self._planning_done and self._closed == self._planned

    def _step(self) -> None:
        """A page or a parent is done: STATE goes out when enough are (see PARENTS_PER_STATE_STEP)."""
        self._steps += 1
        if self._steps >= math.ceil(len(self._parents) / PARENTS_PER_STATE_STEP) or self._complete():
            self._emit()

    def _emit(self) -> None:
        self._steps = 0
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
    so syncs of one day together spend no more than the endpoint's daily limit, or
    the connector's `rate_limit_share` of it.
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
        quota = state.get("quota")
        quota = quota if isinstance(quota, Mapping) else {}
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
