"""Streams read through adaptive windows (see windows.py): events, profiles and exclusions."""

from __future__ import annotations

from abc import ABC
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar

from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor
from airbyte_cdk.sources.streams.concurrent.partitions.partition_generator import PartitionGenerator

from source_klaviyo.clock import parse_klaviyo_datetime
from source_klaviyo.state import SLICE_END, SLICE_START
from source_klaviyo.streams.base import IncrementalKlaviyoStream
from source_klaviyo.streams.context import StreamContext
from source_klaviyo.windows import Window, WindowPartition, WindowPlanner, epoch, formatted

# Klaviyo's page when an endpoint takes no page[size] (events on 2023-10-15).
FIXED_PAGE_SIZE = 200


class WindowedKlaviyoStream(IncrementalKlaviyoStream, ABC):
    """Reads one window per partition, sorted by the cursor so that after each page the rest can be handed off.

    `variants` are queries run in turn over each window (e.g. one per metric filter);
    None is the plain query.
    """

    variants: tuple[Any, ...] = (None,)
    # Whether a window ends with each page (its records sorted by the cursor), handing the rest back.
    hands_off_pages: ClassVar[bool] = True
    page_size: int  # HttpStream's attribute (None there): the endpoint's largest page, or Klaviyo's fixed one

    def __init__(self, context: StreamContext) -> None:
        super().__init__(context)
        self.page_size = self._endpoint.max_page_size or FIXED_PAGE_SIZE

    def extra_params(self) -> Mapping[str, Any]:
        return {"sort": self.time_field}

    def planner(self, cursor: Cursor, pages: MessageRepository | None) -> PartitionGenerator | None:
        self.cursor = cursor  # the ranges to read come from it
        return WindowPlanner(self, self.ranges(), self._config.num_workers, self.slots, pages)

    def ranges(self) -> Iterable[Window]:
        """The ranges to read, from the cursor (state, backfill window, lookback) to now."""
        assert self.cursor is not None, "`planner` attaches the cursor before the planner reads the ranges"
        for stream_slice in self.cursor.stream_slices():
            start, end = (epoch(parse_klaviyo_datetime(stream_slice[key])) for key in (SLICE_START, SLICE_END))
            yield Window(start, end, self.variants)

    def cursor_epoch(self, record: Mapping[str, Any]) -> int | None:
        value = record.get(self.cursor_field)
        return epoch(parse_klaviyo_datetime(value)) if value else None

    def read_window(self, partition: WindowPartition) -> Iterator[list[MutableMapping[str, Any]]]:
        """The window's records a page at a time, the window narrowed to each page it keeps."""
        for position, variant in enumerate(partition.window.variants):
            token = None
            while True:
                window = partition.window  # narrower once a page handed off the rest
                request = {SLICE_START: formatted(window.start), SLICE_END: formatted(window.end), "variant": variant}
                _, response = self._fetch_next_page(request, {}, token)
                records = list(self.parse_response(response, stream_slice=request))
                token = self.next_page_token(response)
                del response  # the parsed page is large; keep only its records while they are emitted
                if token and position == 0 and records:
                    # A page comes sorted by the cursor (extra_params): its first and last records bound it.
                    first, last = (self.cursor_epoch(record) or window.start for record in (records[0], records[-1]))
                    if partition.hand_off(last, len(records), first, last):
                        # The rest, from `last` on (including this page's records at `last`), is another window's now.
                        newest, keep = records[-1].get(self.cursor_field), len(records)
                        while keep and records[keep - 1].get(self.cursor_field) == newest:
                            keep -= 1
                        del records[keep:]
                        token = None
                yield records
                if not token:
                    break
