"""The metric_aggregates config: Klaviyo's POST /api/metric-aggregates body(ies), checked before any request.

A query is the JSON body Klaviyo documents, as an object or a string holding
it; a list of them, each with an optional "name", gives several queries. Every
mistake is reported with what to change, the allowed values coming from
Klaviyo's spec for the configured revision (a unit test holds the lists below
to the spec).

Beside "data", a query may hold our own keys: "timeframe" (a Reporting API
timeframe key) or "days_back" instead of datetime terms in `filter`, resolved
in the query's timezone against the command's `now` so a scheduled sync reads
a current range; and "reread_intervals", how many of the newest intervals an
incremental sync reads again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from source_klaviyo.clock import EARLIEST_DATE, LATEST_DATE
from source_klaviyo.report_dates import local_midnight

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
_ANY_DATETIME_TERM = re.compile(r"\(\s*datetime\s*,")
TIMEFRAMES = (
    "today", "yesterday", "last_7_days", "last_30_days", "last_90_days", "last_365_days", "this_week",
    "last_week", "this_month", "last_month", "last_3_months", "last_12_months", "this_year", "last_year",
)  # fmt: skip
# "Time range dates may be set to a maximum of 5 years prior to the current date" (the 2023-10-15 description).
MAX_YEARS_BACK = 5
MAX_DAYS_BACK = 1825  # days_back within those five years
# "While most are supported, a few notable exceptions are `Factory`, `Europe/Kyiv` and `Pacific/Kanton`" (timezone).
UNSUPPORTED_TIMEZONES = ("Factory", "Europe/Kyiv", "Pacific/Kanton")
DEFAULT_REREAD_INTERVALS = 2  # the current interval, still filling, and the one before, for late events
MAX_REREAD_INTERVALS = 366


@dataclass(frozen=True)
class AggregateQuery:
    """One query, with its datetime range taken out of `filter` (the rest of `filter` kept as given).

    `relative` is the timeframe key or "days_back=N" a relative range was given as
    (None: fixed); start and end are then that range resolved for this command.
    """

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
    relative: str | None = None
    reread_intervals: int = DEFAULT_REREAD_INTERVALS

    def canonical(self) -> str:
        """The query as stable text: what a row's id hashes, so one query yields the same ids every sync.

        A relative range enters by its key, not its resolved bounds, which move every day.
        """
        fields = {**self.__dict__, "start": self.start.isoformat(), "end": self.end.isoformat()}
        for unstable in ("page_size", "relative", "reread_intervals"):
            fields.pop(unstable)
        if self.relative:
            fields.update(start=self.relative, end=self.relative)
        return json.dumps(fields, sort_keys=True)

    def resume_start(self, newest_read: datetime | None) -> datetime:
        """Where a sync reads from: the range's start, or with state the last `reread_intervals` intervals
        up to the newest one read (their numbers still change as late events arrive), never before the range."""
        if newest_read is None:
            return self.start
        zone = ZoneInfo(self.timezone)
        newest = interval_start(newest_read, self.interval, zone)
        return max(self.start, shift(newest, self.interval, 1 - self.reread_intervals, zone))


def parse_queries(raw: Any, revision: str, now: datetime) -> tuple[AggregateQuery, ...]:
    """The queries of the config value, relative ranges resolved as of `now`; ValueError with a message
    that says what to fix."""
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
    queries = tuple(_query(item, index, len(items), revision, now) for index, item in enumerate(items))
    names = [query.name for query in queries]
    if len(set(names)) != len(names):
        raise ValueError(
            f"must give each query its own name; {sorted({n for n in names if names.count(n) > 1})} repeat"
        )
    return queries


def _query(body: Mapping[str, Any], index: int, count: int, revision: str, now: datetime) -> AggregateQuery:
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
    if timezone in UNSUPPORTED_TIMEZONES:
        raise ValueError(
            f"must use a timezone Klaviyo accepts in {where}timezone: it refuses {', '.join(UNSUPPORTED_TIMEZONES)} "
            "(Europe/Kiev and Pacific/Enderbury name the same zones as the last two)"
        )
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
    reread = body.get("reread_intervals", DEFAULT_REREAD_INTERVALS)
    if not _whole(reread, 1, MAX_REREAD_INTERVALS):
        raise ValueError(f"must give {where}reread_intervals as a whole number from 1 to {MAX_REREAD_INTERVALS}")
    relative = _relative_key(body, where)
    if relative:
        others = _without_range(attributes.get("filter", []), where)
        start, end = relative_range(relative, interval, zone, now)
    else:
        start, end, others = _range(attributes.get("filter"), zone, where)
    return AggregateQuery(
        str(name),
        metric_id,
        tuple(measurements),
        tuple(by),
        interval,
        timezone,
        start,
        end,
        others,
        sort,
        page_size,
        relative,
        reread,
    )


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _relative_key(body: Mapping[str, Any], where: str) -> str | None:
    """The relative range's key: the timeframe as given, `days_back=30` for {"days_back": 30}; None: fixed."""
    if "timeframe" in body and "days_back" in body:
        raise ValueError(f"must give {where}either timeframe or days_back, not both")
    if "timeframe" in body:
        _only([body["timeframe"]], TIMEFRAMES, f"{where}timeframe")
        return str(body["timeframe"])
    if "days_back" in body:
        if not _whole(body["days_back"], 1, MAX_DAYS_BACK):
            raise ValueError(f"must give {where}days_back as a whole number of days from 1 to {MAX_DAYS_BACK}")
        return f"days_back={body['days_back']}"
    return None


def _without_range(filters: Any, where: str) -> tuple[str, ...]:
    if not isinstance(filters, list) or not all(isinstance(term, str) for term in filters):
        raise ValueError(f"must give {where}filter as a list of strings")
    dated = [term for term in filters if _ANY_DATETIME_TERM.search(term)]
    if dated:
        raise ValueError(f"must leave datetime terms out of {where}filter when timeframe or days_back is set: {dated}")
    return tuple(filters)


def relative_range(relative: str, interval: str, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of a relative range on `now`'s day in `zone`, widened to whole intervals and
    ending with the interval that holds `now` (no empty future intervals)."""
    first, after = _days(relative, now.astimezone(zone).date())
    end = local_midnight(after, zone)
    last = interval_start(end, interval, zone)
    whole_end = end if last == end else shift(last, interval, 1, zone)
    current_end = shift(interval_start(now, interval, zone), interval, 1, zone)
    return interval_start(local_midnight(first, zone), interval, zone), min(whole_end, current_end)


def _days(relative: str, today: date) -> tuple[date, date]:
    """The days [first, after) a relative range covers: `last_*` ranges end before today, the others
    (`today`, `this_*`, days_back) take in today."""
    tomorrow, day = today + timedelta(days=1), timedelta(days=1)
    if relative.startswith("days_back="):
        return today - int(relative.removeprefix("days_back=")) * day, tomorrow
    monday, month, january = today - today.weekday() * day, today.replace(day=1), today.replace(month=1, day=1)
    return {
        "today": (today, tomorrow),
        "yesterday": (today - day, today),
        "last_7_days": (today - 7 * day, today),
        "last_30_days": (today - 30 * day, today),
        "last_90_days": (today - 90 * day, today),
        "last_365_days": (today - 365 * day, today),
        "this_week": (monday, tomorrow),
        "last_week": (monday - 7 * day, monday),
        "this_month": (month, tomorrow),
        "last_month": (_months_after(month, -1), month),
        "last_3_months": (_months_after(month, -3), month),
        "last_12_months": (_months_after(month, -12), month),
        "this_year": (january, tomorrow),
        "last_year": (january.replace(year=january.year - 1), january),
    }[relative]


def earliest_start(interval: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The first interval start Klaviyo still answers for: none of its dates more than MAX_YEARS_BACK years before
    today (a range widened to whole weeks or months may begin before the day a days_back range names)."""
    today = now.astimezone(zone).date()
    try:
        limit = local_midnight(today.replace(year=today.year - MAX_YEARS_BACK), zone)
    except ValueError:  # 29 February
        limit = local_midnight(today.replace(year=today.year - MAX_YEARS_BACK, day=28), zone)
    first = interval_start(limit, interval, zone)
    return first if first >= limit else shift(first, interval, 1, zone)


def interval_start(moment: datetime, interval: str, zone: ZoneInfo) -> datetime:
    """The start, in `zone`, of the interval holding `moment` (weeks start on Monday)."""
    local = moment.astimezone(zone)
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    day = local.date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    return local_midnight(day, zone)


def shift(start: datetime, interval: str, count: int, zone: ZoneInfo) -> datetime:
    """The interval start `count` intervals after the interval start `start` (before it when negative);
    days and longer step by the calendar, so a DST change does not shift midnight."""
    if interval == "hour":
        return (start.astimezone(timezone.utc) + timedelta(hours=count)).astimezone(zone)
    day = start.astimezone(zone).date()
    if interval == "month":
        return local_midnight(_months_after(day, count), zone)
    return local_midnight(day + timedelta(days=count * (7 if interval == "week" else 1)), zone)


def _months_after(first_of_month: date, count: int) -> date:
    years, month = divmod(first_of_month.month - 1 + count, 12)
    return date(first_of_month.year + years, month + 1, 1)


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
            'less-than(datetime,<end>), e.g. 2025-01-01T00:00:00; or a relative range beside "data": '
            '"timeframe" (e.g. "last_30_days") or "days_back" (e.g. 30)'
        )
    if bounds["less-than"] <= bounds["greater-or-equal"]:
        raise ValueError(f"must end {where}the datetime range after it starts")
    return bounds["greater-or-equal"], bounds["less-than"], tuple(others)
