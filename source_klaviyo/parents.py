"""Per-parent streams (a campaign's messages, a list's members) as partitions of the CDK's concurrent engine.

The planner reads the parents in its own thread, through the shared API budget,
and yields one partition per parent: its children, read page by page. Parents
run concurrently, but no more at once than their endpoint's steady limit keeps
busy (two for Klaviyo's 60- and 150-a-minute endpoints, four for 750 a minute):
the budget would make the others wait anyway, holding read slots other streams
could use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition

from source_klaviyo.planning import (
    PARENT,
    IdentitySlice,
    Page,
    ParentsReader,
    PlannedPartition,
    Planner,
    ReadSlots,
    ResumePoint,
)
from source_klaviyo.state import ParentCursor

# About how long Klaviyo takes to answer a page: a running parent asks about 1 / REQUEST_SECONDS times a second.
REQUEST_SECONDS = 0.25
# Two at least, so one parent's slow answer never leaves its endpoint idle.
MIN_PARENTS_AT_ONCE = 2


def parents_at_once(steady_per_minute: int, workers: int) -> int:
    """How many parents may run at once: enough to keep the endpoint at its steady limit, no more."""
    keeps_busy = math.ceil(steady_per_minute / 60 * REQUEST_SECONDS)
    return max(1, min(workers, max(MIN_PARENTS_AT_ONCE, keeps_busy)))


class ParentPartition(PlannedPartition):
    def __init__(self, planner: ParentPlanner, parent_id: str, start: ResumePoint) -> None:
        super().__init__(planner, IdentitySlice({PARENT: parent_id}))
        self._parents = planner
        self.parent_id = parent_id
        self._start = start

    def pages(self) -> Iterator[Page]:
        cursor = self._parents.cursor
        for page in self._parents.stream.read_parent(self.parent_id, self._start):
            yield page.records
            # The page's records are queued by now: its progress may go into the next STATE.
            cursor.page_read(self._slice, page)


class ParentPlanner(Planner):
    """Yields a partition per parent the cursor has something to read of, at most `at_once` running."""

    def __init__(
        self,
        stream: ParentsReader,
        cursor: ParentCursor,
        workers: int,
        slots: ReadSlots | None,
        pages: MessageRepository | None = None,
    ) -> None:
        super().__init__(stream.name, slots, pages)
        self.stream = stream
        self.cursor = cursor
        self.at_once = parents_at_once(stream.steady_per_minute, workers)

    def generate(self) -> Iterable[Partition]:
        # Every id first: reading parents holds a read slot, which the partitions need too.
        for parent_id in list(self.stream.parents()):
            start = self.cursor.resume_point(parent_id)
            if start is None:
                continue  # read by the interrupted sync this one resumes, or its state lies after now
            with self._changed:
                if not self.wait_for(lambda: self._running < self.at_once):
                    return
                self.started()
            self.cursor.planned()
            yield ParentPartition(self, parent_id, start)
        self.cursor.planning_done()
