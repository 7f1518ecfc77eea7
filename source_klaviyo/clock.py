"""The connector's one clock, and Klaviyo's datetime format.

Nothing else reads the wall clock: a command takes `now` once from the source's
clock, and every window, backfill start and check of a date derives from it.
Tests inject a fixed clock (or set SOURCE_KLAVIYO_NOW for a connector they run
as a process), so they pass on any date.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime, timezone
from typing import Any, Protocol

# Klaviyo opened in 2012; no Klaviyo record is older, so no window starts earlier.
KLAVIYO_EPOCH = datetime(2012, 1, 1, tzinfo=timezone.utc)
# Dates a user can write: before this is no Klaviyo data, after that is no date a sync can reach.
EARLIEST_DATE = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_DATE = datetime(2100, 1, 1, tzinfo=timezone.utc)
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
NOW_VARIABLE = "SOURCE_KLAVIYO_NOW"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that always reads `moment`: for tests, and for runs that must be repeatable."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def clock_from_environment() -> Clock:
    """The system clock, or a fixed one when SOURCE_KLAVIYO_NOW holds a `YYYY-MM-DDTHH:MM:SSZ`."""
    pinned = os.environ.get(NOW_VARIABLE)
    return FixedClock(parse_klaviyo_datetime(pinned)) if pinned else SystemClock()


def parse_klaviyo_datetime(value: Any) -> datetime:
    """Klaviyo's ISO-8601 strings (`...+00:00` or `...Z`) as aware datetimes, without dateutil's cost."""
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@functools.lru_cache(maxsize=256)
def format_klaviyo_datetime(value: datetime) -> str:
    """Cached: every STATE writes the bounds of every finished window again, most of them the ones the last
    STATE wrote. A state holds at most two windows per worker; a larger cache only kept a minute's worth of
    old bounds, pinning memory the pages had freed."""
    return value.astimezone(timezone.utc).strftime(DATETIME_FORMAT)
