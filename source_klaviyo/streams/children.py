"""Per-parent streams: a parent's children (a flow's actions, a list's members), one partition per parent.

A `ChildStream` declares where its parents come from (a `ParentCollection`, read
for ids under the shared budget) and how to read one parent's children; the
planner in parents.py runs the parents concurrently and the `ParentCursor` in
state.py keeps their state. A parent deleted between two requests answers 404:
its children read so far stay, the rest is skipped with a warning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import takewhile
from typing import Any, ClassVar

from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor
from airbyte_cdk.sources.streams.concurrent.partitions.partition_generator import PartitionGenerator
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.clock import format_klaviyo_datetime, parse_klaviyo_datetime
from source_klaviyo.incoming_state import Resumes
from source_klaviyo.parents import ParentPlanner
from source_klaviyo.planning import PARENT, ParentPage, ResumePoint
from source_klaviyo.state import SLICE_START, ParentCursor
from source_klaviyo.streams.base import KlaviyoStream, archived_filter

# The parent id a probe asks for: a key without the scope gets 403, any other key 404 (no such parent).
PROBE_PARENT = "probe"


class ChildStream(KlaviyoStream, ABC):
    """One parent's children per partition; incremental per parent on `cursor_field` when it is set."""

    parent_field: ClassVar[str]  # the record field naming the parent, e.g. "flow_id"
    child_key: ClassVar[str] = "id"  # the record field telling one child of a parent from another
    cursor_field: ClassVar[str] = ""  # filtered and sorted by Klaviyo, one value per parent ("": none)
    resumes_full_refresh = True

    @abstractmethod
    def parents(self) -> Iterator[str]:
        """The ids of the parents to read, each once (read under the budget, in the read's slots)."""

    @property
    def time_field(self) -> str | None:
        return self.cursor_field or None

    def concurrent_cursor(self, state_manager: ConnectorStateManager, repository: MessageRepository) -> Cursor | None:
        return ParentCursor(
            stream_name=self.name,
            parent_field=self.parent_field,
            cursor_field=(self.cursor_field or None) if self.incremental else None,
            state_manager=state_manager,
            message_repository=repository,
            now=self._now,
            first_sync_start=self.window_start,
            start_date=self._config.start_date,
        )

    def planner(self, cursor: Cursor, pages: MessageRepository | None) -> PartitionGenerator | None:
        assert isinstance(cursor, ParentCursor)
        return ParentPlanner(self, cursor, self._config.num_workers, self.slots, pages)

    def resumes(self) -> Resumes | None:
        return Resumes((self.cursor_field or None) if self.incremental else None, self.parent_field)

    def extra_params(self) -> Mapping[str, Any]:
        return {"sort": self.cursor_field} if self.cursor_field else {}

    def parent_in_path(self, stream_slice: Mapping[str, Any] | None) -> str | None:
        return str((stream_slice or {}).get(PARENT, PROBE_PARENT))

    def window(self, stream_slice: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
        """From the parent's resume point (inclusive) up to the command's now, as windowed streams are bounded."""
        return (stream_slice or {}).get(SLICE_START), format_klaviyo_datetime(self._now)

    def probe_request(self) -> Mapping[str, Any] | None:
        """The first page of a parent that does not exist: 403 without the scopes, else 404 (or an empty page)."""
        request = dict(super().probe_request() or {})
        filters = [*self.base_filters(), *self.slice_filters({PARENT: PROBE_PARENT})]
        request["params"] = {**request["params"], **({"filter": ",".join(filters)} if filters else {})}
        return request

    def error_overrides(self) -> Mapping[str, Any]:
        # A parent deleted since it was listed: read_parent skips it with a warning (a probe's parent never existed).
        return {"overrides": {404: ErrorResolution(ResponseAction.IGNORE)}}

    def read_parent(self, parent_id: str, start: ResumePoint) -> Iterator[ParentPage]:
        """The parent's children (changed since `start.since`, when given), each naming its parent, a page at a time.

        The children at `start.since` an earlier sync delivered (`start.skip`) are left out. A read resumed at
        `start.next_page` whose link Klaviyo no longer takes (it fails or finds nothing) starts the parent again
        from `start.since`, with a warning: a parent really deleted answers 404 there too.
        """
        since = format_klaviyo_datetime(start.since) if start.since else None
        stream_slice = {PARENT: parent_id, SLICE_START: since}
        token: Mapping[str, Any] | None = {"next": self.url_base + start.next_page} if start.next_page else None
        saved_link = token is not None  # the request about to go out follows the link an earlier sync saved
        while True:
            try:
                _, response = self._fetch_next_page(stream_slice, {}, token)
                problem = "HTTP 404" if response.status_code == 404 else ""
            except AirbyteTracedException as error:
                if not saved_link:
                    raise
                problem = error.message or "it failed"
            if problem and saved_link:
                self.logger.warning(
                    f"Stream {self.name}: Klaviyo did not take the saved link to the next page of {self.parent_field} "
                    f"{parent_id} ({problem}); reading it again from its start."
                )
                token, saved_link = None, False
                continue
            saved_link = False
            if response.status_code == 404:
                self.logger.warning(f"Stream {self.name}: {self.parent_field} {parent_id} no longer exists; skipped.")
                return
            records = list(self.parse_response(response, stream_slice=stream_slice))
            for record in records:
                record[self.parent_field] = parent_id
            if start.skip:
                records = [record for record in records if not self._delivered(record, start)]
            token = self.next_page_token(response)
            yield ParentPage(records, token["next"][len(self.url_base) :] if token else "", *self._newest(records))
            if not token:
                return

    def _delivered(self, record: Mapping[str, Any], start: ResumePoint) -> bool:
        """Whether an earlier sync delivered the child: one of its children at the parent's newest value."""
        value = record.get(self.cursor_field)
        return (
            str(record.get(self.child_key)) in start.skip
            and bool(value)
            and parse_klaviyo_datetime(value) == start.since
        )

    def _newest(self, records: Sequence[Mapping[str, Any]]) -> tuple[datetime | None, tuple[str, ...]]:
        """The page's newest cursor value and the keys of its children at it (the page is sorted by the cursor)."""
        newest = records[-1].get(self.cursor_field) if self.cursor_field and records else None
        if not newest:
            return None, ()
        tail = takewhile(lambda record: record.get(self.cursor_field) == newest, reversed(records))
        return parse_klaviyo_datetime(newest), tuple(str(record.get(self.child_key)) for record in tail)


class ParentCollection(KlaviyoStream):
    """The records of a parent collection (each of `partitions`, a list of filters), read only for their ids;
    `parent_id` names the parent of a collection of children (`flows/{id}/flow-actions`).

    It carries its child's name, so an error while reading parents names the stream the user selected.
    """

    def __init__(
        self,
        child: KlaviyoStream,
        endpoint_name: str,
        partitions: Sequence[Sequence[str]] = ((),),
        included: tuple[str, ...] = (),
        relationships: Mapping[str, str] | None = None,
        parent_id: str | None = None,
    ) -> None:
        self.name = child.name
        self.endpoint_name = endpoint_name
        self.included = included
        self.relationships = relationships or {}
        self._partitions = partitions
        self._parent_id = parent_id
        super().__init__(child.context)

    def parent_in_path(self, stream_slice: Mapping[str, Any] | None) -> str | None:
        return self._parent_id

    def stream_slices(self, **kwargs: Any) -> Iterable[Mapping[str, Any] | None]:
        for filters in self._partitions:
            yield {"filters": filters}

    def slice_filters(self, stream_slice: Mapping[str, Any] | None) -> list[str]:
        return list((stream_slice or {}).get("filters", ()))

    def probe_request(self) -> Mapping[str, Any] | None:
        """The first partition's first page, one record long (some collections require their filter)."""
        request = dict(super().probe_request() or {})
        filters = self.slice_filters(next(iter(self.stream_slices())))
        request["params"] = {**request["params"], **({"filter": ",".join(filters)} if filters else {})}
        return request

    def all_records(self) -> Iterator[Mapping[str, Any]]:
        for stream_slice in self.stream_slices():
            yield from self.read_records(SyncMode.full_refresh, stream_slice=stream_slice)

    def ids(self, field: str = "id") -> Iterator[str]:
        """Each record's `field` (or each id it lists), once."""
        seen: set[str] = set()
        for record in self.all_records():
            value = record.get(field)
            for item in value if isinstance(value, list) else [value] if value else []:
                if item not in seen:
                    seen.add(item)
                    yield item


def archived_and_not(*filters: str) -> list[list[str]]:
    """Both partitions of a collection that lists archived records only when asked for them."""
    return [[*filters, archived_filter(archived)] for archived in (False, True)]
