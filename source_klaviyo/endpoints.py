"""Klaviyo's per-revision facts for every endpoint the connector reads.

One table, copied from the `x-klaviyo-ratelimit`, `x-klaviyo-scopes` and
`page[size]` entries of Klaviyo's OpenAPI spec for each revision (a unit test
holds it to the spec), so that paths, scopes, page sizes and rate limits are
decided in one place rather than in each stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

KLAVIYO_API_URL = "https://a.klaviyo.com/"
DEFAULT_REVISION = "2026-07-15"
RETIRED_REVISION = "2023-10-15"
REVISIONS = (DEFAULT_REVISION, RETIRED_REVISION)


@dataclass(frozen=True)
class Endpoint:
    """One GET (or POST) collection endpoint as one revision defines it."""

    name: str  # path segment after /api/, e.g. "campaigns"
    scope: str  # the read scope a private key needs
    burst_per_second: int
    steady_per_minute: int
    max_page_size: int | None  # None: the endpoint takes no page[size]

    def path(self, revision: str) -> str:
        """2023-10-15 writes collection paths with a trailing slash, later revisions without."""
        return f"api/{self.name}/" if revision == RETIRED_REVISION else f"api/{self.name}"


def _table(*endpoints: Endpoint) -> Mapping[str, Endpoint]:
    return {endpoint.name: endpoint for endpoint in endpoints}


ENDPOINTS: Mapping[str, Mapping[str, Endpoint]] = {
    DEFAULT_REVISION: _table(
        Endpoint("campaigns", "campaigns:read", 10, 150, 100),
        Endpoint("templates", "templates:read", 75, 750, 10),
        Endpoint("profiles", "profiles:read", 75, 750, 100),
        Endpoint("events", "events:read", 350, 3500, 1000),
        Endpoint("metrics", "metrics:read", 10, 150, None),
        Endpoint("lists", "lists:read", 75, 750, 10),
        Endpoint("segments", "segments:read", 75, 750, 10),
        Endpoint("flows", "flows:read", 3, 60, 50),
        Endpoint("metric-aggregates", "metrics:read", 3, 60, None),
    ),
    RETIRED_REVISION: _table(
        Endpoint("campaigns", "campaigns:read", 10, 150, None),
        Endpoint("templates", "templates:read", 10, 150, None),
        Endpoint("profiles", "profiles:read", 75, 700, 100),
        Endpoint("events", "events:read", 350, 3500, None),
        Endpoint("metrics", "metrics:read", 10, 150, None),
        Endpoint("lists", "list:read", 75, 700, None),
        Endpoint("segments", "segments:read", 75, 700, None),
        Endpoint("flows", "flows:read", 3, 60, 50),
        Endpoint("metric-aggregates", "metrics:read", 3, 60, None),
    ),
}


# The retired v1 campaigns API (GET /api/v1/campaigns): no spec of ours lists it; it answered
# 100 campaigns a page, and these limits keep well under what it allowed.
V1_CAMPAIGNS = Endpoint("v1/campaigns", "campaigns:read", 10, 150, 100)

# GET /api/profiles with additional-fields[profile]=predictive_analytics drops to these
# limits (burst per second, steady per minute) in both revisions; the spec says so in the
# operation's description rather than in x-klaviyo-ratelimit.
PREDICTIVE_PROFILES_LIMITS = (10, 150)
PREDICTIVE_FIELDS = "subscriptions,predictive_analytics"


def endpoint(revision: str, name: str) -> Endpoint:
    return ENDPOINTS[revision][name]
