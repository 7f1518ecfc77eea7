"""POST /api/metric-aggregates computed from the simulator's own events.

The request's rules are the spec's words: the filter "must include time range"
(a `greater-or-equal` and a `less-than` on `datetime`); "The time range may span
a maximum of one year. Time range dates may be set to a maximum of 5 years prior
to the current date" (2023-10-15's description; 2026-07-15 no longer says it and
the simulator keeps both rules); the timezone "is validated against a list of
common timezones from the IANA Time Zone Database", less the exceptions the
description names, and "This field is case-sensitive".
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from integration_tests.klaviyo_sim.data import Dataset, Record
from integration_tests.klaviyo_sim.query import Term, matches, terms_of
from klaviyo_spec.aggregate_rules import supported_timezones
from klaviyo_spec.contract import Violation, parse_datetime, parse_filter

MAX_RANGE = timedelta(days=366)
MAX_YEARS_BACK = 5
_NEGATED = re.compile(r"\s*not\((.*)\)\s*")


def bucket_start(moment: datetime, interval: str) -> datetime:
    """The start of the interval (in the moment's timezone) that holds `moment`; weeks start on Monday."""
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_bucket(start: datetime, interval: str) -> datetime:
    if interval == "hour":
        return start + timedelta(hours=1)
    if interval == "day":
        return (start + timedelta(days=1, hours=2)).replace(hour=0)  # safe across DST changes
    if interval == "week":
        return (start + timedelta(days=7, hours=2)).replace(hour=0)
    return (start + timedelta(days=32)).replace(day=1)


def _years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year - years, day=28)


def query_range(filters: list[str], zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime] | Violation:
    start = end = None
    for expression in filters:
        for operator, field, value in parse_filter(expression):
            if field != "datetime":
                continue
            try:
                moment = parse_datetime(value)
            except ValueError:
                return Violation(f"'{value}' is not an ISO-8601 datetime.", "filter")
            moment = moment if moment.tzinfo else moment.replace(tzinfo=zone)
            if operator == "greater-or-equal":
                start = moment
            elif operator == "less-than":
                end = moment
    if start is None or end is None:
        return Violation("The filter must hold greater-or-equal(datetime,...) and less-than(datetime,...).", "filter")
    if end <= start:
        return Violation("The end of the time range must be after its start.", "filter")
    if end - start > MAX_RANGE:
        return Violation("The time range may span at most one year.", "filter")
    if start.date() < _years_before(now.astimezone(zone), MAX_YEARS_BACK).date():
        return Violation(
            f"Time range dates may be set to a maximum of {MAX_YEARS_BACK} years prior to the current date.", "filter"
        )
    return start, end


def property_filters(filters: list[str]) -> list[tuple[bool, list[Term]]] | Violation:
    """The filter's terms on event properties (the datetime range aside) as (negated, terms): an event
    counts when it matches every plain group and no `not(...)` one; a missing property is ""."""
    groups = []
    for expression in filters:
        negated = _NEGATED.fullmatch(expression)
        try:
            terms = [term for term in terms_of(negated.group(1) if negated else expression) if term[1] != "datetime"]
        except ValueError as error:
            return Violation(f"Invalid filter: {error}.", "filter")
        if terms:
            groups.append((negated is not None, terms))
    return groups


def aggregate(dataset: Dataset, attributes: Mapping[str, Any], revision: str) -> dict[str, Any] | Violation:
    """Klaviyo's response attributes {dates, data} of the dataset's events as `revision` answers them."""
    events, visible_until = dataset.events, dataset.visible_until
    name = attributes.get("timezone") or "UTC"
    if name not in supported_timezones(revision):
        return Violation(f"'{name}' is not a supported timezone.", "timezone")
    zone = ZoneInfo(name)
    bounds = query_range(list(attributes["filter"]), zone, datetime.fromtimestamp(dataset.now, timezone.utc))
    if isinstance(bounds, Violation):
        return bounds
    start, end = bounds
    groups = property_filters(list(attributes["filter"]))
    if isinstance(groups, Violation):
        return groups
    filtered = sorted({term[1] for _, terms in groups for term in terms})
    interval = attributes.get("interval") or "day"
    dates: list[datetime] = []
    cursor = bucket_start(start.astimezone(zone), interval)
    while cursor < end:
        dates.append(cursor)
        cursor = next_bucket(cursor, interval)
    position = {date: slot for slot, date in enumerate(dates)}
    dimensions = list(attributes.get("by") or [])
    measurements = list(attributes["measurements"])
    metric = attributes["metric_id"]
    try:
        metric_index = events.metric_ids.index(metric)
    except ValueError:
        return Violation(f"Metric '{metric}' does not exist.", None, status=404)

    counts: dict[tuple, list[float]] = defaultdict(lambda: [0.0] * len(dates))
    sums: dict[tuple, list[float]] = defaultdict(lambda: [0.0] * len(dates))
    profiles: dict[tuple, list[set]] = defaultdict(lambda: [set() for _ in dates])
    low = int(start.timestamp())
    high = min(int(end.timestamp()), visible_until + 1)
    first, last = events.first_at_or_after(low), events.first_at_or_after(high)
    for index in events.by_metric[metric_index]:
        if index < first:
            continue
        if index >= last:
            break
        record = events.record(index)
        properties = record.attributes["event_properties"]
        if groups:
            values = Record("", {field: properties.get(field, "") for field in filtered})
            if any(matches(values, terms) is negated for negated, terms in groups):
                continue
        slot = position[
            bucket_start(datetime.fromtimestamp(record.times["datetime"], timezone.utc).astimezone(zone), interval)
        ]
        key = tuple(str(properties.get(dimension, "")) for dimension in dimensions)
        counts[key][slot] += 1
        sums[key][slot] += float(properties.get("$value", 0) or 0)
        profiles[key][slot].add(record.fields["profile_id"])

    rows = []
    for key in sorted(counts) or ([tuple("" for _ in dimensions)] if not dimensions else []):
        values = {
            "count": counts[key],
            "sum_value": [round(total, 2) for total in sums[key]],
            "unique": [float(len(seen)) for seen in profiles[key]],
        }
        rows.append({"dimensions": list(key), "measurements": {name: values[name] for name in measurements}})
    sort = attributes.get("sort")
    if sort and sort.lstrip("-") in dimensions:
        column = dimensions.index(sort.lstrip("-"))
        rows.sort(key=lambda row: row["dimensions"][column], reverse=sort.startswith("-"))
    return {"dates": [date.isoformat() for date in dates], "data": rows}


def page_of(rows: list, cursor: str | None, size: int) -> tuple[list, int | None] | Violation:
    """Rows of one page and the offset of the next (None at the end)."""
    try:
        offset = int(cursor) if cursor else 0
    except ValueError:
        return Violation(f"'{cursor}' is not a valid page cursor.", "page_cursor")
    return rows[offset : offset + size], (offset + size if offset + size < len(rows) else None)
