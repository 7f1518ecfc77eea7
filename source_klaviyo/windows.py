"""Time windows that adapt to how dense the data is, as partitions of the CDK's concurrent engine.

Events, profiles and exclusions are read in windows of their cursor field.
The range is first cut into a few windows per worker. A window reads one page: when more
follow, it narrows itself to what that page covered and hands the untouched
rest back to the planner, which cuts it into windows sized to the density just
seen, as many as there are workers that would otherwise wait. Waiting windows
are read earliest first. An empty stretch costs one request; a busy day is read
by many workers at once; every page is a finished window, checkpointed as soon
as its records are out, so a killed sync loses at most the pages in flight; and
the state holds few gaps, one per window being read.

State stays exact: a partition reports the window it really covered (its
slice), windows never overlap, and the CDK's ConcurrentCursor keeps every
finished window in the stream's date-range state (see state.py).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from itertools import count, pairwise
from typing import Any

from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition

from source_klaviyo.clock import format_klaviyo_datetime
from source_klaviyo.planning import IdentitySlice, Page, PlannedPartition, Planner, ReadSlots, WindowedReader
from source_klaviyo.state import SLICE_END, SLICE_START

# A first cut never makes windows shorter than this; empty stretches stay cheap.
MIN_FIRST_WINDOW_SECONDS = 3600
# A dense window hands off its rest when that rest is likely to take more pages than this...
SPLIT_ABOVE_PAGES = 2
# ...in windows sized to hold about this many pages each.
PAGES_PER_WINDOW = 4


@dataclass(frozen=True)
class Window:
    """[start, end) in epoch seconds, for each of `variants` in turn (e.g. one metric filter each)."""

    start: int
    end: int
    variants: tuple[Any, ...] = (None,)


def cut(window: Window, pieces: int) -> list[Window]:
    """`window` in up to `pieces` consecutive windows of (nearly) equal length, at least a second each."""
    pieces = max(1, min(pieces, window.end - window.start))
    bounds = [window.start + (window.end - window.start) * i // pieces for i in range(pieces + 1)]
    return [replace(window, start=low, end=high) for low, high in pairwise(bounds) if high > low]


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def formatted(seconds: int) -> str:
    return format_klaviyo_datetime(datetime.fromtimestamp(seconds, timezone.utc))


class WindowSlice(IdentitySlice):
    """A partition's slice: the window it covers as {start, end}, for the cursor's state; it narrows
    when the window hands off its rest, and stays the same key for the cursor."""

    def __init__(self, window: Window) -> None:
        super().__init__({SLICE_START: formatted(window.start), SLICE_END: formatted(window.end)})
        self.window = window

    def narrow(self, end: int) -> None:
        self.window = replace(self.window, end=end)
        self[SLICE_END] = formatted(end)


class WindowPartition(PlannedPartition):
    def __init__(self, planner: WindowPlanner, window: Window) -> None:
        super().__init__(planner, WindowSlice(window))
        self._slice: WindowSlice
        self._windows = planner

    @property
    def window(self) -> Window:
        return self._slice.window

    def pages(self) -> Iterator[Page]:
        return self._windows.stream.read_window(self)

    def hand_off(self, at: int, records_seen: int, first: int, last: int) -> bool:
        """Keep [start, at) and give [at, end) back to the planner, cut to the density just seen.

        Called after each page of the first variant, before its records are emitted, with
        that page's size and its first and last cursor values. True when the window was
        narrowed: the caller then drops the page's records at or after `at`, which the
        rest reads again. So a window ends with the page it read, and its state is saved
        with that page; a dense rest is cut for several workers.
        """
        window = self.window
        if not self._windows.stream.hands_off_pages or last <= first or at <= window.start:
            return False
        expected = records_seen * (window.end - at) / (last - first)
        page = self._windows.stream.page_size
        pieces = 1
        if expected > SPLIT_ABOVE_PAGES * page:
            pieces = min(self._windows.max_pieces, math.ceil(expected / (PAGES_PER_WINDOW * page)))
        self._slice.narrow(at)
        self._windows.add(Window(at, window.end, window.variants), pieces)
        return True


class WindowPlanner(Planner):
    """Yields window partitions until every window, including those handed back, has been read."""

    def __init__(
        self,
        stream: WindowedReader,
        ranges: Iterable[Window],
        workers: int,
        slots: ReadSlots | None = None,
        pages: MessageRepository | None = None,
    ) -> None:
        super().__init__(stream.name, slots, pages)
        self.stream = stream
        self.max_pieces = 2 * workers
        self._workers = workers
        self._ranges = ranges
        # Windows waiting for a worker, earliest first, so that finished windows join up in the state.
        self._pending: list[tuple[int, int, Window]] = []
        self._order = count()

    def generate(self) -> Iterable[Partition]:
        for window in self._ranges:
            length = window.end - window.start
            self._queue(cut(window, max(1, min(self.max_pieces, length // MIN_FIRST_WINDOW_SECONDS))))
        while True:
            with self._changed:
                if not self.wait_for(lambda: bool(self._pending) or not self._running) or not self._pending:
                    return
                window = heapq.heappop(self._pending)[2]
                self.started()
            yield WindowPartition(self, window)

    def add(self, rest: Window, pieces: int) -> None:
        """Queue a rest handed off by a running partition, cut in up to `pieces` but no more than the workers
        that would otherwise wait: a window started leaves a gap in the state until its own rest is read.
        (Cutting every dense rest in up to 20 left about 250 gaps at 1M events, all in every STATE.)"""
        with self._changed:
            idle = self._workers - (self._running - 1) - len(self._pending)
            self._queue(cut(rest, min(pieces, max(1, idle))))
            self._changed.notify_all()

    def _queue(self, windows: Sequence[Window]) -> None:
        for window in windows:
            heapq.heappush(self._pending, (window.start, next(self._order), window))
