"""The connector's one clock, and Klaviyo's datetime format.

Nothing else reads the wall clock: a command takes `now` once from the source's
clock (`command_now`, in whole seconds), and every window, backfill start and
check of a date derives from it. Tests inject a fixed clock (or set
SOURCE_KLAVIYO_NOW for a connector they run as a process), so they pass on any date.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime, timezone
from typing import Any, Protocol

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

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
    """The system clock, or a fixed one when SOURCE_KLAVIYO_NOW holds an ISO datetime (`2026-12-06T03:14:07Z`,
    fractions of a second allowed); anything else there is a config error, not a traceback."""
    pinned = os.environ.get(NOW_VARIABLE)
    if not pinned:
        return SystemClock()
    try:
        moment = parse_klaviyo_datetime(pinned.strip())
    except ValueError:
        moment = None
    if moment is None or not EARLIEST_DATE <= moment < LATEST_DATE:
        raise AirbyteTracedException(
            message=f"{NOW_VARIABLE} is {pinned!r}, which is no datetime like 2026-12-06T03:14:07Z between 1970 and "
            "2100. Set it to one, or unset it to read the system clock.",
            failure_type=FailureType.config_error,
        )
    return FixedClock(moment)


def command_now(clock: Clock) -> datetime:
    """The command's one `now`, in UTC and whole seconds: Klaviyo's datetimes and this connector's state have
    second precision, and comparing a window end written in seconds with a `now` that had microseconds made
    every finished sync look interrupted (its next sync then skipped the lookback)."""
    moment = clock.now()
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0)


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
