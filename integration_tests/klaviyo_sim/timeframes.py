"""The Reporting API's time frames and series intervals, read in the account's timezone.

Klaviyo resolves report time frames in the account's timezone, so a report's days
are local days. How the simulator reads the spec's keys (all relative to the
dataset's `now`, in the account timezone; every range is [start, end)):

- today: the current local day (midnight to midnight); yesterday: the day before.
- last_7_days, last_30_days, last_90_days, last_365_days: that many whole days before
  today (today not included).
- this_week / last_week: the current / previous Monday-to-Monday week.
- this_month / last_month: the current / previous calendar month.
- last_3_months, last_12_months: that many whole calendar months before this month.
- this_year / last_year: the current / previous calendar year.

A custom {"start", "end"} keeps its wall-clock date-time and drops its offset (the
spec says the offset is ignored and the company timezone used).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from integration_tests.klaviyo_sim.aggregates import MAX_RANGE, bucket_start, next_bucket
from klaviyo_spec.contract import Violation, parse_datetime

INTERVALS = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month"}  # -> aggregates' names
SEGMENT_DATA_START = date(2023, 6, 1)  # segment reports have no data before this (the spec's timeframe description)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _month(day: date, months_back: int) -> date:
    """The first day of the month `months_back` months before `day`'s month."""
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def resolve(timeframe: Mapping[str, Any], now: int, zone: ZoneInfo) -> tuple[datetime, datetime] | Violation:
    """(start, end) of a Timeframe or CustomTimeframe as aware datetimes in `zone`."""
    if "key" in timeframe:
        start_day, end_day = _key_days(timeframe["key"], datetime.fromtimestamp(now, zone).date())
        start, end = _midnight(start_day, zone), _midnight(end_day, zone)
    else:
        try:
            start, end = (parse_datetime(timeframe[part]).replace(tzinfo=zone) for part in ("start", "end"))
        except ValueError:
            return Violation("The timeframe's start and end must be ISO-8601 date-times.", None)
    if end <= start:
        return Violation("The timeframe's end must be after its start.", None)
    if end - start > MAX_RANGE:
        return Violation("The timeframe may span at most 1 year.", None)
    return start, end


def _key_days(key: str, today: date) -> tuple[date, date]:
    day = timedelta(days=1)
    if key == "today":
        return today, today + day
    if key == "yesterday":
        return today - day, today
    if key.endswith("_days"):
        return today - int(key.split("_")[1]) * day, today
    monday = today - today.weekday() * day
    if key == "this_week":
        return monday, monday + 7 * day
    if key == "last_week":
        return monday - 7 * day, monday
    if key == "this_month":
        return _month(today, 0), _month(today, -1)
    if key == "last_month":
        return _month(today, 1), _month(today, 0)
    if key.endswith("_months"):  # last_3_months, last_12_months
        return _month(today, int(key.split("_")[1])), _month(today, 0)
    if key == "this_year":
        return date(today.year, 1, 1), date(today.year + 1, 1, 1)
    return date(today.year - 1, 1, 1), date(today.year, 1, 1)  # last_year


def buckets(start: datetime, end: datetime, interval: str | None) -> list[datetime]:
    """Starts of the series buckets covering [start, end) (one bucket, `start`, without an interval)."""
    if interval is None:
        return [start]
    name = INTERVALS[interval]
    starts, cursor = [], bucket_start(start, name)
    while cursor < end:
        starts.append(cursor)
        cursor = next_bucket(cursor, name)
    return starts
