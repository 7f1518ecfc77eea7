"""Time windows that adapt to how dense the data is, as partitions of the CDK's concurrent engine.

Events and profiles are read in windows of their cursor field. The range is
first cut into a few windows per worker. A window that turns out dense (its
first page is full and covers a small part of it) keeps that page, narrows
itself to what the page covered, and hands the untouched rest back to the
planner, which cuts it into windows sized to the density just seen. An empty
stretch costs one request; a busy day is read by many workers at once.

State stays exact: a partition reports the window it really covered (its
slice), windows never overlap, and the CDK's ConcurrentCursor advances state
only over windows that are complete back to the start.
"""

from __future__ import annotations

import concurrent.futures.thread
import math
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.streams.concurrent.partitions.partition_generator import PartitionGenerator
from airbyte_cdk.sources.types import Record

from source_klaviyo.cursor import SLICE_END, SLICE_START, format_klaviyo_datetime

if TYPE_CHECKING:
    from source_klaviyo.streams.windowed import WindowedKlaviyoStream

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


class WindowSlice(Mapping[str, Any]):
    """A partition's slice: the window it covers as {start, end}, for the cursor's state.

    Hashed by identity, because the cursor keys each record's cursor value by its
    slice: a content hash would cost microseconds per record, and a window that
    narrows must stay the same key.
    """

    def __init__(self, window: Window) -> None:
        self.window = window
        self._values = {SLICE_START: formatted(window.start), SLICE_END: formatted(window.end)}

    def narrow(self, end: int) -> None:
        self.window = replace(self.window, end=end)
        self._values[SLICE_END] = formatted(end)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


class WindowPartition(Partition):
    def __init__(self, planner: WindowPlanner, window: Window) -> None:
        self._planner = planner
        self._slice = WindowSlice(window)

    @property
    def window(self) -> Window:
        return self._slice.window

    def read(self) -> Iterable[Record]:
        name, window_slice = self._planner.stream.name, self._slice
        try:
            for data in self._planner.stream.read_window(self):
                yield Record(data=data, stream_name=name, associated_slice=window_slice)
        except BaseException:
            self._planner.failed = True
            raise
        finally:
            self._planner.finished()

    def hand_off(self, at: int, records_seen: int, first: int, last: int) -> bool:
        """Keep [start, at) and give [at, end) back to the planner when the density says it is worth it.

        Called after the first page of the first variant, before any of its records are
        emitted, with that page's size and its first and last cursor values. True when the
        window was narrowed (the caller then drops the records at or after `at`).
        """
        window = self.window
        if not self._planner.adaptive or last <= first or at <= window.start:
            return False
        expected = records_seen * (window.end - at) / (last - first)
        page = self._planner.stream.page_size
        if expected <= SPLIT_ABOVE_PAGES * page:
            return False
        pieces = min(self._planner.max_pieces, math.ceil(expected / (PAGES_PER_WINDOW * page)))
        self._slice.narrow(at)
        self._planner.add(cut(Window(at, window.end, window.variants), pieces))
        return True

    def to_slice(self) -> Mapping[str, Any]:
        return self._slice

    def stream_name(self) -> str:
        return self._planner.stream.name

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"WindowPartition({self.stream_name()}, {dict(self._slice)})"


class WindowPlanner(PartitionGenerator):
    """Yields window partitions until every window, including those handed back, has been read.

    With one worker nothing is handed back (the planner would wait for a partition
    that cannot run); windows are then read whole, one after the other. The planner
    stops waiting when one of its partitions failed or the process is exiting, so a
    failed sync can never hang on it; windows left unread only hold state back.
    """

    def __init__(self, stream: WindowedKlaviyoStream, ranges: Iterable[Window], workers: int) -> None:
        self.stream = stream
        self.adaptive = workers > 1
        self.max_pieces = 2 * workers
        self._ranges = ranges
        self._pending: deque[Window] = deque()
        self._running = 0
        self._changed = threading.Condition()
        self.failed = False

    def generate(self) -> Iterable[Partition]:
        for window in self._ranges:
            length = window.end - window.start
            pieces = min(self.max_pieces, length // MIN_FIRST_WINDOW_SECONDS) if self.adaptive else 1
            self._pending.extend(cut(window, max(1, pieces)))
        while True:
            with self._changed:
                while self.adaptive and not self._pending and self._running and not self._abandoned():
                    self._changed.wait(timeout=1)
                if not self._pending or self._abandoned():
                    return
                window = self._pending.popleft()
                self._running += 1
            yield WindowPartition(self, window)

    def _abandoned(self) -> bool:
        # concurrent.futures sets _shutdown when the interpreter exits; its worker threads are then joined.
        return self.failed or getattr(concurrent.futures.thread, "_shutdown", False)

    def add(self, windows: Sequence[Window]) -> None:
        with self._changed:
            self._pending.extend(windows)
            self._changed.notify_all()

    def finished(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()
