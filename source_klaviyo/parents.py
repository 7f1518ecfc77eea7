"""Per-parent streams (a campaign's messages, a list's members) as partitions of the CDK's concurrent engine.

The planner reads the parents in its own thread, through the shared API budget,
and yields one partition per parent: its children, read page by page. Parents
run concurrently, but never more at once than their endpoint's steady limit can
keep busy (two for Klaviyo's 60-a-minute endpoints): the budget would make the
others wait anyway, holding read slots other streams could use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition

from source_klaviyo.planning import IdentitySlice, PlannedPartition, Planner, ReadSlots

if TYPE_CHECKING:
    from source_klaviyo.state import ParentCursor
    from source_klaviyo.streams.children import ChildStream

PARENT = "parent_id"
# A parent's request takes well under this many seconds, so this many requests a second per running parent.
REQUESTS_PER_PARENT_PER_SECOND = 0.5


def parents_at_once(steady_per_minute: int, workers: int) -> int:
    """How many parents may run at once: enough to use the endpoint's steady limit, no more."""
    return max(1, min(workers, math.ceil(steady_per_minute / 60 / REQUESTS_PER_PARENT_PER_SECOND)))


class ParentPartition(PlannedPartition):
    def __init__(self, planner: ParentPlanner, parent_id: str) -> None:
        super().__init__(planner, IdentitySlice({PARENT: parent_id}), planner.slots)
        self._parents = planner
        self.parent_id = parent_id

    def records(self) -> Iterator[Mapping[str, Any]]:
        return self._parents.stream.read_parent(self.parent_id, self._parents.cursor.since(self.parent_id))


class ParentPlanner(Planner):
    """Yields a partition per parent the cursor has not finished, at most `at_once` running."""

    def __init__(self, stream: ChildStream, cursor: ParentCursor, workers: int, slots: ReadSlots | None) -> None:
        super().__init__(stream.name)
        self.stream = stream
        self.cursor = cursor
        self.slots = slots
        self.at_once = parents_at_once(stream.steady_per_minute, workers)

    def generate(self) -> Iterable[Partition]:
        # Every id first: reading parents holds a read slot, which the partitions need too.
        for parent_id in list(self.stream.parents()):
            if self.cursor.finished(parent_id):
                continue  # read by the interrupted sync this one resumes
            with self._changed:
                if not self.wait_for(lambda: self._running < self.at_once):
                    return
                self.started()
            self.cursor.planned()
            yield ParentPartition(self, parent_id)
        self.cursor.planning_done()
