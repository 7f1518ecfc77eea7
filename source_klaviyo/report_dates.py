"""The dates of Reporting API requests, in the account's timezone, where Klaviyo counts its report days.

Klaviyo reads a report's custom timeframe as wall-clock time in the account's
timezone (it ignores the offset), and a series report's days are that
timezone's days. So every boundary here is a local midnight: a values report is
read per calendar year (the longest period one request allows, and one that
never moves, so a period's rows keep their ids), a daily series report in
chunks of 60 days (the longest a daily interval allows). The period of a
running year or chunk ends at `now`; the next sync reads it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# A daily series report covers at most 60 days per request.
SERIES_CHUNK_DAYS = 60


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


@dataclass(frozen=True)
class Period:
    """[start, end) of one report request, as aware datetimes in the account's timezone."""

    start: datetime
    end: datetime

    def timeframe(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    def __str__(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def first_day(moment: datetime, zone: ZoneInfo, yearly: bool) -> datetime:
    """The local midnight a read that must cover `moment` starts at: that day, or 1 January of its year."""
    day = moment.astimezone(zone).date()
    return local_midnight(day.replace(month=1, day=1) if yearly else day, zone)


def periods(start: datetime, now: datetime, zone: ZoneInfo, yearly: bool) -> Iterator[Period]:
    """The requests that read [start, now): calendar years (yearly) or 60-day chunks, the last ending at now."""
    end = now.astimezone(zone).replace(microsecond=0)
    begin = start.astimezone(zone)
    while begin < end:
        day = begin.date()
        following = day.replace(year=day.year + 1, month=1, day=1) if yearly else day + timedelta(SERIES_CHUNK_DAYS)
        finish = min(local_midnight(following, zone), end)
        yield Period(begin, finish)
        begin = finish
