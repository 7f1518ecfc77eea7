"""Klaviyo's per-account rate limits as one CDK API budget shared by every stream.

Klaviyo counts requests per endpoint in two fixed windows (burst per second,
steady per minute) for the whole account. One `HttpAPIBudget` with a moving
window per endpoint keeps every thread of every stream under both windows; a
RateLimit-Remaining of 0 fills that endpoint's window so all its threads pause
together. A 429 leaves the budget alone: it says how long to wait (Retry-After,
honoured per request by the error handler), and filling the minute window on
each one would stall every thread for a minute while Klaviyo asked for a second.

The windows are the account's, shared with the store's other apps. `rate_limit_share`
is the part of each window this connector may take; HEADROOM applies on top of it:
a window of `limit` calls gives usable(limit, share) = floor(limit × share × HEADROOM),
at least 1. A window of which the share is only a call or two keeps its whole calls
over a longer interval instead (see _rate), and the Reporting API's daily quota
gives floor(225 × share) (whole_share).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from airbyte_cdk.sources.streams.call_rate import (
    AbstractCallRatePolicy,
    CallRateLimitHit,
    HttpAPIBudget,
    HttpRequestRegexMatcher,
    MovingWindowCallRatePolicy,
    Rate,
)

from source_klaviyo.endpoints import ENDPOINTS, PREDICTIVE_FIELDS, PREDICTIVE_PROFILES_LIMITS, V1_CAMPAIGNS
from source_klaviyo.shutdown import stop_point

# Our clock measures when a request leaves; Klaviyo's windows count arrivals, and
# latency jitter can push one more request into a window than we sent in it.
# Spending 90% of each published limit keeps a full-speed sync clear of 429s.
HEADROOM = 0.9


SMALL_LIMIT = 3
# Klaviyo counts a call when it arrives; it arrives some time after the budget counted it (the GIL, a busy
# CPU, the network). A burst spent at once could then land partly in the next second, beside that second's
# burst. Spent at most a tenth per PACE, the calls counted in any 1.1 s stay within the published burst,
# so a delay of up to PACE costs no 429; the rate over a second is unchanged.
PACE = timedelta(milliseconds=100)
PACED_ABOVE = 10
# The window's wait is whole milliseconds rounded down, on the limiter's own clock, and may be 0 or less: a caller
# that slept just that long woke before its window freed and tried again (9-14 tries for six callers over three
# windows, measured). Sleeping this much longer finds the window free (9 tries in 25 of 25 runs).
WAKE_MARGIN_SECONDS = 0.002
# The one query parameter a policy matches on: profiles with predictive analytics have their own limits.
PREDICTIVE_PARAM = "additional-fields[profile]"
# A wait for a window longer than this is announced before it starts (the Reporting API's 2 requests a minute
# make waits of up to a minute): the log says why the connector is quiet, and for how long.
LONG_WAIT_SECONDS = 30

logger = logging.getLogger("airbyte")


def usable(limit: int, share: float = 1.0) -> int:
    """The calls of a window of `limit` this connector spends in it: its share, less HEADROOM, at least one."""
    return max(1, math.floor(limit * share * HEADROOM))


def whole_share(limit: int, share: float) -> int:
    """The whole calls of `share` of a window of `limit`, at least one. The Reporting API's daily quota is spent up
    to this, without HEADROOM: the stream's state counts the day request by request, and no latency can move a
    request across its edge the way it can across a second's."""
    return max(1, math.floor(limit * share))


def leading_number(value: str | None) -> int | None:
    """The first whole number of a header (`2` and `2, 2;w=60` both give 2)."""
    found = re.match(r"\s*(\d+)", value or "")
    return int(found[1]) if found else None


class KlaviyoAPIBudget(HttpAPIBudget):
    """HttpAPIBudget that reads Klaviyo's headers the way Klaviyo writes them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # (method, URL without its query, the predictive parameter) -> the policy, and the request counted for it.
        self._matched: dict[
            tuple[str, str, str | None], tuple[AbstractCallRatePolicy | None, requests.PreparedRequest]
        ] = {}
        # Policy -> the lock its callers wait their turn on (see acquire_call).
        self._turns: dict[AbstractCallRatePolicy, threading.Lock] = {}

    def get_reset_ts_from_response(self, response: requests.Response) -> None:
        # Klaviyo's RateLimit-Reset counts seconds until the window resets, not an
        # epoch timestamp as the base class assumes; without it, a remaining count
        # of 0 fills the window instead of being ignored.
        return None

    def _match(self, request: Any) -> tuple[AbstractCallRatePolicy | None, requests.PreparedRequest]:
        """The base class runs every policy's matcher (a URL parse and a regex each) on every request;
        the answer depends only on the method, the path and the one parameter a matcher looks at."""
        base, _, query = request.url.partition("?")
        key = (request.method, base, dict(parse_qsl(query)).get(PREDICTIVE_PARAM))
        matched = self._matched.get(key)
        if matched is None:
            counted = requests.PreparedRequest()
            counted.method, counted.url = request.method, request.url
            policy = super().get_matching_policy(counted)
            if policy is not None:
                self._turns.setdefault(policy, threading.Lock())
            matched = self._matched[key] = (policy, counted)
        return matched

    def get_matching_policy(self, request: Any) -> AbstractCallRatePolicy | None:
        return self._match(request)[0]

    def acquire_call(self, request: Any, block: bool = True, timeout: float | None = None) -> None:
        """A policy's moving window keeps each call it counts for a minute. Each used to keep its own request
        (a PreparedRequest, its URL and hooks): at full speed a minute of events, 3,000 of them, interleaved
        with the pages' objects, pinned memory the pages had freed, and peak RSS rose from 121 MB at 100k
        events to 140 MB at 3M. One request per endpoint and query now stands for all of its calls.

        A thread that found its policy's window full slept until the window's oldest call left it, and so did
        every other waiting thread: all woke at once, one got the call, and the rest counted a hit again (4.5
        tries a request on a 100k-profile read, each formatting the CDK's log lines), some spinning on a wait
        rounded down to 0 ms. Callers of one policy now wait their turn on its lock, and only the first in line
        polls the window, waking WAKE_MARGIN_SECONDS after it frees.

        Every request passes here before it is sent, retries too: after a SIGTERM, none starts (shutdown.py). A
        wait longer than LONG_WAIT_SECONDS is logged before it starts, naming the endpoint and how long it is."""
        policy, counted = self._match(request)
        if policy is None or not block or timeout is not None:
            stop_point()
            super().acquire_call(counted, block, timeout)
            return
        with self._turns[policy]:
            while True:
                stop_point()  # also after waiting for the turn or for the window
                try:
                    super().acquire_call(counted, block=False)
                    return
                except CallRateLimitHit as hit:
                    wait = max(hit.time_to_wait.total_seconds(), 0) + WAKE_MARGIN_SECONDS
                    if wait > LONG_WAIT_SECONDS:
                        path = urlsplit(counted.url or "").path
                        logger.info(
                            f"Klaviyo's rate limit on {counted.method} {path}: the next request waits {wait:.0f} s for "
                            "its window."
                        )
                    time.sleep(wait)

    def get_calls_left_from_response(self, response: requests.Response) -> int | None:
        if response.status_code in self._status_codes_for_ratelimit_hit:
            return None
        return leading_number(response.headers.get(self._ratelimit_remaining_header))


def _rate(limit: int, interval: timedelta, share: float) -> Rate:
    """usable(limit, share) calls per `interval`, unless the share is under SMALL_LIMIT calls, where rounding would
    cost much of it (the Reporting API's 2/m: 90% rounds down to half) or take more than it (a share under one call,
    the Reporting API's 1/s at any share below 1, any small window at 0.1: "at least one" per window is more).
    There the share's whole calls (at least one) are kept over an interval stretched to the same average, limit ×
    share × HEADROOM per `interval`, and never shorter than `interval`: no window of Klaviyo's sees more of this
    connector's calls than the whole calls of its share."""
    calls = limit * share
    if calls < SMALL_LIMIT:
        whole = whole_share(limit, share)
        return Rate(limit=whole, interval=max(interval, interval * whole / (calls * HEADROOM)))
    return Rate(limit=usable(limit, share), interval=interval)


def _paced(burst: int, share: float) -> list[Rate]:
    """A tenth of the usable burst per PACE (none for a burst too small to split)."""
    limit = usable(burst, share)
    return [Rate(limit=math.ceil(limit / 10), interval=PACE)] if limit >= PACED_ABOVE else []


def _policy(burst: int, steady: int, share: float, matcher: HttpRequestRegexMatcher) -> MovingWindowCallRatePolicy:
    rates = [
        *_paced(burst, share),
        _rate(burst, timedelta(seconds=1), share),
        _rate(steady, timedelta(minutes=1), share),
    ]
    return MovingWindowCallRatePolicy(rates=rates, matchers=[matcher])


def build_budget(api_url: str, revision: str, share: float = 1.0) -> KlaviyoAPIBudget:
    """One moving-window policy per endpoint of `revision`, at `share` of its published limits, less HEADROOM.

    Profiles with predictive analytics have their own, lower policy, listed first
    because the first matching policy wins; the retired v1 campaigns API has one too.
    """
    parts = urlsplit(api_url)
    base = f"{parts.scheme}://{parts.netloc}"

    def matcher(name: str, **params: str) -> HttpRequestRegexMatcher:
        # A parent's id fills one path segment; 2023-10-15 ends paths with a slash.
        path = "/".join("[^/]+" if part == "{id}" else re.escape(part) for part in name.split("/"))
        return HttpRequestRegexMatcher(url_base=base, url_path_pattern=rf"^/api/{path}/?$", params=params)

    predictive = matcher("profiles", **{PREDICTIVE_PARAM: PREDICTIVE_FIELDS})
    policies = [_policy(*PREDICTIVE_PROFILES_LIMITS, share, predictive)]
    endpoints = [*ENDPOINTS[revision].values(), V1_CAMPAIGNS]
    policies += [_policy(e.burst_per_second, e.steady_per_minute, share, matcher(e.name)) for e in endpoints]
    return KlaviyoAPIBudget(policies=policies)
