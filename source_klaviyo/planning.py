"""What the connector's own partition generators share: running counts, abandonment, read slots, slices, and
the small protocols a planner plans over (what it needs of a stream, not the stream's class).

A planner (windows.py, parents.py) yields partitions to the CDK's concurrent
engine as work becomes known, and may wait for running partitions (a window
hands back the rest of its range, a slow endpoint allows only a few parents at
a time). Each planner has a thread of its own; partitions read in the engine's
other threads, each holding one of the read's `num_workers` slots, so requests
in flight stay at `num_workers` however many streams plan at once.
"""

from __future__ import annotations

import concurrent.futures.thread
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.streams.concurrent.partitions.partition_generator import PartitionGenerator
from airbyte_cdk.sources.types import Record, StreamSlice

from source_klaviyo.protocol import RecordPage
from source_klaviyo.shutdown import STOP

ReadSlots = threading.BoundedSemaphore
# The key of a per-parent partition's slice naming its parent.
PARENT = "parent_id"
Page = list[MutableMapping[str, Any]]


@dataclass(frozen=True)
class ResumePoint:
    """Where a parent is read from: `since` (None: all of it), less the children at `since` an earlier sync
    delivered (`skip`, their keys); or its interrupted read's `next_page` link."""

    since: datetime | None
    next_page: str = ""
    skip: frozenset[str] = frozenset()


@dataclass
class ParentPage:
    """A page of one parent's children, the link (path and query, after the API's base URL) of the next one, and
    the page's newest cursor value with the keys of the children at it (the page is sorted by the cursor)."""

    records: Page
    next_page: str
    newest: datetime | None = None
    keys_at_newest: tuple[str, ...] = ()


class WindowedReader(Protocol):
    """What windows.py plans over: a stream read in windows of its cursor, a page at a time."""

    @property
    def name(self) -> str: ...

    @property
    def page_size(self) -> int: ...

    @property
    def hands_off_pages(self) -> bool:
        """Whether a window ends with each page it reads, handing the rest back."""

    def read_window(self, partition: Any) -> Iterator[Page]:
        """The window's records a page at a time (the partition may narrow as pages hand off its rest)."""


class ParentsReader(Protocol):
    """What parents.py plans over: a stream read one parent at a time."""

    @property
    def name(self) -> str: ...

    @property
    def steady_per_minute(self) -> int: ...

    def parents(self) -> Iterator[str]:
        """The ids of the parents to read, each once."""

    def read_parent(self, parent_id: str, start: ResumePoint) -> Iterator[ParentPage]:
        """The parent's children from `start`, a page at a time."""


def slot(slots: ReadSlots | None) -> AbstractContextManager[Any]:
    """One of the read's slots for the duration of a partition (no limit without slots)."""
    return slots if slots is not None else nullcontext()


class IdentitySlice(dict[str, Any]):
    """A partition's slice, hashed by identity: the cursor keys each record's cursor value by its slice,
    a content hash would cost microseconds per record, and a slice that changes must stay the same key."""

    # typeshed declares dict's __hash__ None (dicts are unhashable), which no subclass may set again.
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return self is other


class PartitionAbandoned(Exception):
    """A partition left unread because another partition of its stream failed; it stays out of the state."""


class Planner(PartitionGenerator):
    """Counts running partitions and stops waiting once one failed or the process is exiting or stopping
    (SIGTERM), so a failed sync never hangs on a planner; partitions left unread only hold state back."""

    def __init__(
        self, stream_name: str, slots: ReadSlots | None = None, pages: MessageRepository | None = None
    ) -> None:
        self.stream_name = stream_name
        self.slots = slots
        # Where partitions send their records a page at a time (protocol.py); None: a Record each.
        self.pages = pages
        self.failed = False
        self._running = 0
        self._changed = threading.Condition()

    def wait_for(self, ready: Callable[[], bool]) -> bool:
        """Wait (holding the lock) until `ready()` or until the stream is abandoned; True when ready."""
        while not ready() and not self.abandoned():
            self._changed.wait(timeout=1)
        return not self.abandoned()

    def abandoned(self) -> bool:
        # concurrent.futures sets _shutdown when the interpreter exits; its worker threads are then joined.
        return self.failed or STOP.is_set() or getattr(concurrent.futures.thread, "_shutdown", False)

    def started(self) -> None:
        """Called with the lock held, for each partition yielded."""
        self._running += 1

    def finished(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    @abstractmethod
    def generate(self) -> Iterable[Partition]: ...


class PlannedPartition(Partition):
    """A partition of a Planner: reads in one of the read's slots, and tells its planner when it ends."""

    def __init__(self, planner: Planner, stream_slice: IdentitySlice) -> None:
        self._planner = planner
        self._slice = stream_slice

    @abstractmethod
    def pages(self) -> Iterator[list[MutableMapping[str, Any]]]:
        """The partition's records a page at a time, each page sorted by the stream's cursor."""

    def read(self) -> Iterable[Record]:
        planner = self._planner
        # Record types its slice as the declarative StreamSlice, but the cursors only key records by it (the CDK's
        # own StreamPartition passes plain mappings too).
        partition_slice: StreamSlice = self._slice  # type: ignore[assignment]
        name = planner.stream_name
        try:
            with slot(planner.slots):
                if planner.failed:
                    # An earlier partition failed after its retries: fail now, not after another retry budget.
                    raise PartitionAbandoned(f"Stream '{name}' stopped reading after an earlier part of it failed.")
                previous: RecordPage | None = None
                for page in self.pages():
                    if planner.pages is None or len(page) < 2:
                        for data in page:
                            yield Record(data=data, stream_name=name, associated_slice=partition_slice)
                        continue
                    # The page's newest record goes through the CDK: the cursor observes it, and the stream's
                    # RUNNING status goes out before its first record. The rest follow as one RecordPage, once
                    # this partition's previous page is written: a worker holds at most one page unwritten.
                    yield Record(data=page[-1], stream_name=name, associated_slice=partition_slice)
                    while previous is not None and not previous.written.wait(1) and not planner.abandoned():
                        pass
                    previous = RecordPage(name, page[:-1], time.time_ns() // 1_000_000)
                    planner.pages.emit_message(previous)
        except BaseException:
            planner.failed = True
            raise
        finally:
            planner.finished()

    def to_slice(self) -> Mapping[str, Any]:
        return self._slice

    def stream_name(self) -> str:
        return self._planner.stream_name

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.stream_name()}, {dict(self._slice)})"
