"""The Reporting API's daily quota: which cap stopped a report stream, and when its window resets.

Two caps can stop a report stream. Ours: the stream's state counts the day's requests
(state.ReportCursor) and stops at the connector's `rate_limit_share` of the endpoint's published
225 a day (all of it by default), per UTC day. Klaviyo's:
its 429 for the endpoint, which may come from a lower cap than the published one (an account's
own limit, or the store's other apps spending the same quota). Klaviyo's guide to rate limits
says a 429 carries `Retry-After` (seconds to wait) and not the `RateLimit-Limit`,
`RateLimit-Remaining` and `RateLimit-Reset` headers of its other answers; a server that sends
them on its 429 anyway is read too, so the warning names the cap the answer gives. The reset
is counted from the answer's own time (its `Date` header, which an HTTP server with a clock
always sends), not from the start of the sync, which may be hours earlier.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from email.utils import parsedate_to_datetime

import requests

from source_klaviyo.errors import json_body
from source_klaviyo.rate_limits import leading_number

# A 429 asking to wait longer than the steady window (a minute) is a daily limit, not a burst to sit out.
DAILY_LIMIT_RETRY_AFTER = 60


class QuotaExhausted(Exception):
    """A daily cap is spent: `cap` says whose and which, in words; `resets_at` is when its window resets."""

    def __init__(self, cap: str, resets_at: datetime) -> None:
        super().__init__(cap)
        self.cap, self.resets_at = cap, resets_at


def our_quota(per_day: int, path: str, now: datetime, published: int, share: float) -> QuotaExhausted:
    """Our own count reached `per_day`, our `share` of the endpoint's `published` daily quota; it starts again at
    the next UTC midnight. A cap below Klaviyo's says so, or the user would wonder why the sync stopped short."""
    tomorrow = now.astimezone(timezone.utc).date() + timedelta(days=1)
    why = (
        f" (`rate_limit_share` {share:g} of Klaviyo's {published}: the rest is left to the account's other apps)"
        if per_day < published
        else ""
    )
    return QuotaExhausted(
        f"the day's quota of {per_day} requests to {path}{why}, counted per UTC day and spent by today's syncs",
        datetime.combine(tomorrow, time(), tzinfo=timezone.utc),
    )


def daily_limit_reached(response: requests.Response) -> bool:
    return response.status_code == 429 and _wait_seconds(response) > DAILY_LIMIT_RETRY_AFTER


def klaviyo_quota(response: requests.Response, fallback_now: datetime) -> QuotaExhausted:
    """Klaviyo's daily 429 as the cap it names and the moment its window resets: the answer's time (its
    `Date`, else `fallback_now`) plus the seconds it asks to wait."""
    limit = leading_number(response.headers.get("RateLimit-Limit"))
    cap = "Klaviyo's daily limit" + (f" of {limit} requests (its RateLimit-Limit)" if limit is not None else "")
    detail = _error_detail(response)
    cap += f', HTTP 429: "{detail}"' if detail else ", HTTP 429"
    return QuotaExhausted(cap, _answered_at(response, fallback_now) + timedelta(seconds=_wait_seconds(response)))


def _wait_seconds(response: requests.Response) -> float:
    """Retry-After (what Klaviyo's 429 carries), else RateLimit-Reset; 0 when neither is a number."""
    for header in ("Retry-After", "RateLimit-Reset"):
        seconds = leading_number(response.headers.get(header))
        if seconds is not None:
            return float(seconds)
    return 0.0


def _answered_at(response: requests.Response, fallback: datetime) -> datetime:
    try:
        moment = parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return fallback
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _error_detail(response: requests.Response) -> str | None:
    try:
        errors = json_body(response).get("errors") or []
        detail = errors[0].get("detail") if isinstance(errors[0], dict) else None
    except (ValueError, AttributeError, IndexError, TypeError):
        return None
    return detail.strip() if isinstance(detail, str) and detail.strip() else None
