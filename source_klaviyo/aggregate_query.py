"""The metric_aggregates config: Klaviyo's POST /api/metric-aggregates body(ies), checked before any request.

A query is the JSON body Klaviyo documents, as an object or a string holding
it; a list of them, each with an optional "name", gives several queries. Every
mistake is reported with what to change, the allowed values coming from
Klaviyo's spec for the configured revision (a unit test holds the lists below
to the spec).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from source_klaviyo.clock import EARLIEST_DATE, LATEST_DATE

MEASUREMENTS = ("count", "sum_value", "unique")
INTERVALS = ("day", "hour", "month", "week")
_COMMON_DIMENSIONS = (
    "$attributed_channel", "$attributed_flow", "$attributed_message", "$attributed_variation", "$campaign_channel",
    "$flow", "$flow_channel", "$message", "$message_send_cohort", "$variation", "$variation_send_cohort",
    "Bounce Type", "Campaign Name", "Client Canonical", "Client Name", "Client Type", "Email Domain",
    "Failure Source", "Failure Type", "From Number", "From Phone Region", "List", "Message Name", "Message Type",
    "Method", "Subject", "To Number", "To Phone Region", "URL", "form_id",
)  # fmt: skip
DIMENSIONS = {
    "2023-10-15": _COMMON_DIMENSIONS,
    "2026-07-15": (
        *_COMMON_DIMENSIONS,
        "$usage_amount",
        "$value_currency",
        "Bot Click",
        "Inbox Provider",
        "Message Format",
        "Segment Count",
    ),  # fmt: skip
}
_KNOWN = {"metric_id", "measurements", "interval", "by", "filter", "timezone", "sort", "page_size"}
_TERM = re.compile(r"\s*(greater-or-equal|less-than)\(datetime,\s*([^)]+)\)\s*")


@dataclass(frozen=True)
class AggregateQuery:
    """One query, with its datetime range taken out of `filter` (the rest of `filter` kept as given)."""

    name: str
    metric_id: str
    measurements: tuple[str, ...]
    by: tuple[str, ...]
    interval: str
    timezone: str
    start: datetime
    end: datetime
    other_filters: tuple[str, ...]
    sort: str | None
    page_size: int | None

    def canonical(self) -> str:
        """The query as stable text: what a row's id hashes, so one query yields the same ids every sync."""
        fields = {**self.__dict__, "start": self.start.isoformat(), "end": self.end.isoformat()}
        fields.pop("page_size")
        return json.dumps(fields, sort_keys=True)


def parse_queries(raw: Any, revision: str) -> tuple[AggregateQuery, ...]:
    """The queries of the config value; ValueError with a message that says what to fix."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, Mapping) for item in items):
        raise ValueError(
            'must be Klaviyo\'s metric-aggregates body, {"data": {"type": "metric-aggregate", "attributes": '
            "{...}}}, as an object or a string holding it, or a list of such bodies"
        )
    queries = tuple(_query(item, index, len(items), revision) for index, item in enumerate(items))
    names = [query.name for query in queries]
    if len(set(names)) != len(names):
        raise ValueError(
            f"must give each query its own name; {sorted({n for n in names if names.count(n) > 1})} repeat"
        )
    return queries


def _query(body: Mapping[str, Any], index: int, count: int, revision: str) -> AggregateQuery:
    where = f"query {index + 1}: " if count > 1 else ""
    name = body.get("name", "default" if count == 1 else f"query_{index + 1}")
    data = body.get("data")
    if not isinstance(data, Mapping) or data.get("type") != "metric-aggregate":
        raise ValueError(f'must hold {where}"data" with "type": "metric-aggregate"')
    attributes = data.get("attributes")
    if not isinstance(attributes, Mapping):
        raise ValueError(f'must hold {where}"data.attributes"')
    unknown = sorted(set(attributes) - _KNOWN)
    if unknown:
        raise ValueError(f"must use only {sorted(_KNOWN)} in {where}attributes; {unknown} are not supported")

    metric_id = attributes.get("metric_id")
    if not isinstance(metric_id, str) or not metric_id.strip():
        raise ValueError(f"must give {where}a metric_id (the id of a metric, from the metrics stream)")
    measurements = attributes.get("measurements")
    if not isinstance(measurements, list) or not measurements:
        raise ValueError(f"must list {where}measurements, some of {list(MEASUREMENTS)}")
    _only(measurements, MEASUREMENTS, f"{where}measurements")
    by = attributes.get("by") or []
    if not isinstance(by, list):
        raise ValueError(f"must give {where}`by` as a list of dimensions")
    _only(by, DIMENSIONS[revision], f"{where}`by` dimensions (revision {revision})")
    interval = attributes.get("interval") or "day"
    _only([interval], INTERVALS, f"{where}interval")
    timezone = attributes.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"must use an IANA timezone such as America/New_York in {where}timezone, not {timezone!r}"
        ) from None
    sort = attributes.get("sort")
    if sort is not None:
        _only(
            [sort.lstrip("-") if isinstance(sort, str) else sort],
            (*DIMENSIONS[revision], *MEASUREMENTS),
            f"{where}sort",
        )
    page_size = attributes.get("page_size")
    if page_size is not None and (not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1):
        raise ValueError(f"must give {where}page_size as a positive whole number")
    start, end, others = _range(attributes.get("filter"), zone, where)
    return AggregateQuery(
        str(name), metric_id, tuple(measurements), tuple(by), interval, timezone, start, end, others, sort, page_size
    )


def _only(values: list[Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise ValueError(f"is invalid: unknown {what} {unknown}; allowed: {', '.join(allowed)}")


def _range(filters: Any, zone: ZoneInfo, where: str) -> tuple[datetime, datetime, tuple[str, ...]]:
    if not isinstance(filters, list) or not all(isinstance(term, str) for term in filters):
        raise ValueError(f"must give {where}filter as a list of strings")
    bounds: dict[str, datetime] = {}
    others = []
    for term in filters:
        match = _TERM.fullmatch(term)
        if not match:
            others.append(term)
            continue
        try:
            moment = datetime.fromisoformat(match.group(2).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"is invalid: {where}{term!r} does not hold an ISO-8601 datetime") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=zone)
        if not EARLIEST_DATE <= moment < LATEST_DATE:
            raise ValueError(f"is invalid: {where}{term!r} must lie between 1970 and 2100")
        bounds[match.group(1)] = moment
    if set(bounds) != {"greater-or-equal", "less-than"}:
        raise ValueError(
            f"must give {where}a datetime range in filter: greater-or-equal(datetime,<start>) and "
            "less-than(datetime,<end>), e.g. 2025-01-01T00:00:00"
        )
    if bounds["less-than"] <= bounds["greater-or-equal"]:
        raise ValueError(f"must end {where}the datetime range after it starts")
    return bounds["greater-or-equal"], bounds["less-than"], tuple(others)
