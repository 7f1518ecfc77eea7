"""metric_aggregates: the user's Klaviyo aggregate queries, as tidy rows.

Klaviyo answers a query with a list of dates and, per combination of `by`
dimensions, one array per measurement. Each (date, dimensions) becomes a
record with one numeric column per measurement and an id hashed from the
query, the date and the dimensions. A range longer than Klaviyo's one-year
maximum is read in consecutive windows: each window but the last drops its last
date (whose interval may run past the window) and the next window starts at
that date, so every interval is counted once and whole. A range reaching back
more than Klaviyo's five years is read from the first whole interval within
them, with a warning.

Incremental, each query is a partition of a ParentCursor (state.py) keeping the
newest interval it read; the next sync reads that query's last
`reread_intervals` intervals again, whose numbers late events still change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.aggregate_query import MAX_YEARS_BACK, AggregateQuery, earliest_start
from source_klaviyo.config import KlaviyoConfig
from source_klaviyo.errors import json_body
from source_klaviyo.incoming_state import Resumes
from source_klaviyo.planning import PARENT
from source_klaviyo.state import ParentCursor
from source_klaviyo.streams.base import KlaviyoStream

# Klaviyo answers at most a year per query.
MAX_SPAN = timedelta(days=365)


class MetricAggregates(KlaviyoStream):
    name = "metric_aggregates"
    endpoint_name = "metric-aggregates"
    http_method = "POST"
    generated_schema = False
    cursor_field = "date"
    parent_field = "query_name"  # the partition key of the state: one cursor per query

    @classmethod
    def missing_setting(cls, config: KlaviyoConfig) -> str | None:
        return None if config.metric_aggregates else "`metric_aggregates` (a query)"

    @property
    def queries(self) -> tuple[AggregateQuery, ...]:
        return self._config.metric_aggregates

    def concurrent_cursor(self, state_manager: ConnectorStateManager, repository: MessageRepository) -> Cursor | None:
        """Incremental: one cursor per query, its newest interval read (the stream re-reads from there)."""
        if not self.incremental:
            return None
        return ParentCursor(
            stream_name=self.name,
            parent_field=self.parent_field,
            cursor_field=self.cursor_field,
            state_manager=state_manager,
            message_repository=repository,
            now=self._now,
        )

    def resumes(self) -> Resumes | None:
        return Resumes(self.cursor_field, self.parent_field) if self.incremental else None

    def error_overrides(self) -> Mapping[str, Any]:
        # The body is the user's query, so Klaviyo rejecting it is for the user to fix.
        unknown_metric = ErrorResolution(
            ResponseAction.FAIL,
            FailureType.config_error,
            "Klaviyo found no metric with the metric_id of `metric_aggregates` (HTTP 404); "
            "take an id from the metrics stream.",
        )
        return {"bad_request": FailureType.config_error, "overrides": {404: unknown_metric}}

    def stream_slices(self, **kwargs: Any) -> Iterable[Mapping[str, Any] | None]:
        for query in self.queries:
            yield {PARENT: query.name}

    def probe_request(self) -> Mapping[str, Any] | None:
        """The first query over its first readable day, so check and read learn whether Klaviyo accepts it."""
        if not self.queries:
            return None
        query = self.queries[0]
        start = max(query.start, self._earliest(query))
        return {"method": "POST", "json": body(query, start, min(query.end, start + timedelta(days=1)))}

    def _earliest(self, query: AggregateQuery) -> datetime:
        return earliest_start(query.interval, ZoneInfo(query.timezone), self._now)

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        query = next(query for query in self.queries if query.name == (stream_slice or {}).get(PARENT))
        newest = self.cursor.since(query.name) if isinstance(self.cursor, ParentCursor) else None
        start, earliest = query.resume_start(newest), self._earliest(query)
        if start < earliest:
            start = earliest
            self.logger.warning(
                f"metric_aggregates query '{query.name}' reaches back more than {MAX_YEARS_BACK} years, further than "
                f"Klaviyo answers: it is read from {start.isoformat()}."
            )
        while start < query.end:
            end = min(start + MAX_SPAN, query.end)
            last_window = end == query.end
            dates: list[str] = []
            for dates, rows in self._pages(query, start, end):
                kept = dates if last_window else dates[:-1]
                yield from records(query, kept, rows)
            if last_window:
                return
            next_start = datetime.fromisoformat(dates[-1]) if dates else start
            if next_start <= start:
                raise AirbyteTracedException(
                    message=f"Klaviyo answered metric_aggregates query '{query.name}' with dates that do not advance.",
                    internal_message=f"window {start}..{end} returned dates {dates[:3]}...",
                    failure_type=FailureType.system_error,
                )
            start = next_start

    def _pages(self, query: AggregateQuery, start: datetime, end: datetime) -> Iterator[tuple[list[str], list[Any]]]:
        cursor = None
        while True:
            _, response = self._http_client.send_request(
                "POST",
                self._join_url(self.url_base, self.path()),
                request_kwargs=self.request_kwargs(),
                headers=self.request_headers(),
                json=body(query, start, end, cursor),
            )
            document = json_body(response)
            attributes = document["data"]["attributes"]
            yield attributes["dates"], attributes["data"]
            cursor = next_cursor(document)
            if not cursor:
                return


def body(query: AggregateQuery, start: datetime, end: datetime, cursor: str | None = None) -> dict[str, Any]:
    """Klaviyo's request body for `query` over [start, end)."""
    attributes: dict[str, Any] = {
        "metric_id": query.metric_id,
        "measurements": list(query.measurements),
        "interval": query.interval,
        "timezone": query.timezone,
        "filter": [
            f"greater-or-equal(datetime,{start.isoformat()})",
            f"less-than(datetime,{end.isoformat()})",
            *query.other_filters,
        ],
    }
    if query.by:
        attributes["by"] = list(query.by)
    if query.sort:
        attributes["sort"] = query.sort
    if query.page_size:
        attributes["page_size"] = query.page_size
    if cursor:
        attributes["page_cursor"] = cursor
    return {"data": {"type": "metric-aggregate", "attributes": attributes}}


def next_cursor(document: Mapping[str, Any]) -> str | None:
    """The page_cursor of the next page: Klaviyo's spec does not say where it is announced, so the
    connector follows a next link (top level or on the resource) whose query carries it."""
    for links in (document.get("links"), document.get("data", {}).get("links")):
        next_url: str | None = (links or {}).get("next")
        if next_url:
            cursor = parse_qs(urlsplit(next_url).query).get("page_cursor")
            if cursor:
                return cursor[0]
    return None


def records(
    query: AggregateQuery, dates: list[str], rows: list[Mapping[str, Any]]
) -> Iterator[MutableMapping[str, Any]]:
    canonical = query.canonical()
    for row in rows:
        dimensions = dict(zip(query.by, row.get("dimensions") or [], strict=False))
        measurements = row.get("measurements") or {}
        for index, date in enumerate(dates):
            key = "\x1f".join([canonical, date, *map(str, dimensions.values())])
            record: MutableMapping[str, Any] = {
                "id": hashlib.sha256(key.encode()).hexdigest()[:32],
                "query_name": query.name,
                "metric_id": query.metric_id,
                "interval": query.interval,
                "timezone": query.timezone,
                "date": date,
                "dimensions": dimensions,
            }
            for measurement in query.measurements:
                values = measurements.get(measurement) or []
                record[measurement] = values[index] if index < len(values) else None
            yield record
