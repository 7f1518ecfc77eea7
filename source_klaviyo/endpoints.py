"""Klaviyo's per-revision facts for every endpoint the connector reads.

One table, copied from the `x-klaviyo-ratelimit`, `x-klaviyo-scopes` and
`page[size]` entries of Klaviyo's OpenAPI spec for each revision (a unit test
holds it to the spec), so that paths, scopes, page sizes and rate limits are
decided in one place rather than in each stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

KLAVIYO_API_URL = "https://a.klaviyo.com/"
# Final: their types are their literal values, which KlaviyoConfig's `revision` field lists.
DEFAULT_REVISION: Final = "2026-07-15"
RETIRED_REVISION: Final = "2023-10-15"
REVISIONS = (DEFAULT_REVISION, RETIRED_REVISION)
JSON_API: Final = "application/vnd.api+json"
# The media type each revision's spec lists for a POST body: JSON:API's from 2024 on, plain JSON before.
BODY_MEDIA_TYPE: Final = {DEFAULT_REVISION: JSON_API, RETIRED_REVISION: "application/json"}


@dataclass(frozen=True)
class Endpoint:
    """One GET (or POST) endpoint as one revision defines it."""

    name: str  # path after /api/, e.g. "campaigns" or "flows/{id}/flow-actions" (one parent's children)
    scopes: tuple[str, ...]  # the read scopes a private key needs
    burst_per_second: int
    steady_per_minute: int
    max_page_size: int | None  # None: the endpoint takes no page[size]
    per_day: int | None = None  # the Reporting API's daily quota (None: no daily limit)

    @property
    def scope(self) -> str:
        return " and ".join(f"`{scope}`" for scope in self.scopes)

    def path(self, revision: str, parent_id: str | None = None) -> str:
        """2023-10-15 writes paths with a trailing slash, later revisions without; `{id}` is the parent's."""
        name = self.name.replace("{id}", parent_id) if parent_id is not None else self.name
        return f"api/{name}/" if revision == RETIRED_REVISION else f"api/{name}"


# The Reporting API's endpoints (POST /api/<kind>-<report>-reports), revision 2026-07-15 and later.
REPORTS = (
    ("campaign", "values"),
    ("flow", "values"),
    ("flow", "series"),
    ("form", "values"),
    ("form", "series"),
    ("segment", "values"),
    ("segment", "series"),
)
POST_ENDPOINTS = frozenset({"metric-aggregates", *(f"{kind}-{report}-reports" for kind, report in REPORTS)})


def _table(*endpoints: Endpoint) -> Mapping[str, Endpoint]:
    return {endpoint.name: endpoint for endpoint in endpoints}


def _scopes(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ENDPOINTS: Mapping[str, Mapping[str, Endpoint]] = {
    DEFAULT_REVISION: _table(
        Endpoint("campaigns", _scopes("campaigns:read"), 10, 150, 100),
        Endpoint("campaigns/{id}/campaign-messages", _scopes("campaigns:read"), 10, 150, None),
        Endpoint("templates", _scopes("templates:read"), 75, 750, 10),
        Endpoint("profiles", _scopes("profiles:read"), 75, 750, 100),
        Endpoint("events", _scopes("events:read"), 350, 3500, 1000),
        Endpoint("metrics", _scopes("metrics:read"), 10, 150, None),
        Endpoint("lists", _scopes("lists:read"), 75, 750, 10),
        Endpoint("lists/{id}/profiles", _scopes("lists:read profiles:read"), 75, 750, 100),
        Endpoint("segments", _scopes("segments:read"), 75, 750, 10),
        Endpoint("segments/{id}/profiles", _scopes("profiles:read segments:read"), 75, 750, 100),
        Endpoint("flows", _scopes("flows:read"), 3, 60, 50),
        Endpoint("flows/{id}/flow-actions", _scopes("flows:read"), 3, 60, 50),
        Endpoint("flow-actions/{id}/flow-messages", _scopes("flows:read"), 3, 60, 50),
        Endpoint("tags", _scopes("tags:read"), 3, 60, 50),
        Endpoint("tag-groups", _scopes("tags:read"), 3, 60, 25),
        Endpoint("coupons", _scopes("coupons:read"), 75, 750, 100),
        Endpoint("coupon-codes", _scopes("coupon-codes:read"), 350, 3500, 100),
        Endpoint("forms", _scopes("forms:read"), 3, 60, 100),
        Endpoint("catalog-items", _scopes("catalogs:read"), 350, 3500, 100),
        Endpoint("catalog-variants", _scopes("catalogs:read"), 350, 3500, 100),
        Endpoint("catalog-categories", _scopes("catalogs:read"), 350, 3500, 100),
        Endpoint("metric-aggregates", _scopes("metrics:read"), 3, 60, None),
        Endpoint("accounts", _scopes("accounts:read"), 1, 15, None),
        *(
            Endpoint(f"{kind}-{report}-reports", _scopes(f"{kind}s:read"), 1, 2, None, per_day=225)
            for kind, report in REPORTS
        ),
    ),
    RETIRED_REVISION: _table(
        Endpoint("campaigns", _scopes("campaigns:read"), 10, 150, None),
        Endpoint("campaigns/{id}/campaign-messages", _scopes("campaigns:read"), 10, 150, None),
        Endpoint("templates", _scopes("templates:read"), 10, 150, None),
        Endpoint("profiles", _scopes("profiles:read"), 75, 700, 100),
        Endpoint("events", _scopes("events:read"), 350, 3500, None),
        Endpoint("metrics", _scopes("metrics:read"), 10, 150, None),
        Endpoint("lists", _scopes("list:read"), 75, 700, None),
        Endpoint("lists/{id}/profiles", _scopes("list:read profiles:read"), 75, 700, 100),
        Endpoint("segments", _scopes("segments:read"), 75, 700, None),
        Endpoint("segments/{id}/profiles", _scopes("profiles:read segments:read"), 75, 700, 100),
        Endpoint("flows", _scopes("flows:read"), 3, 60, 50),
        Endpoint("flows/{id}/flow-actions", _scopes("flows:read"), 3, 60, 50),
        Endpoint("flow-actions/{id}/flow-messages", _scopes("flows:read"), 3, 60, 100),
        Endpoint("tags", _scopes("tags:read"), 3, 60, None),
        Endpoint("tag-groups", _scopes("tags:read"), 3, 60, None),
        Endpoint("coupons", _scopes("coupons:read"), 75, 700, None),
        Endpoint("coupon-codes", _scopes("coupon-codes:read"), 350, 3500, None),
        Endpoint("catalog-items", _scopes("catalogs:read"), 350, 3500, None),
        Endpoint("catalog-variants", _scopes("catalogs:read"), 350, 3500, None),
        Endpoint("catalog-categories", _scopes("catalogs:read"), 350, 3500, None),
        Endpoint("metric-aggregates", _scopes("metrics:read"), 3, 60, None),
    ),
}


# include= name -> the endpoint whose scopes a key needs to include that resource: Klaviyo's relationships guide
# says a key needs read access to the endpoint and to every resource it includes. (No endpoint of its own lists
# event attributions, so they need no scope beyond events.)
INCLUDE_ENDPOINTS: Mapping[str, str] = {
    "tags": "tags",
    "tag-group": "tag-groups",
    "metric": "metrics",
    "flow-actions": "flows",
    "campaign-messages": "campaigns",
}

# The retired v1 campaigns API (GET /api/v1/campaigns): no spec of ours lists it; it answered
# 100 campaigns a page, and these limits keep well under what it allowed.
V1_CAMPAIGNS = Endpoint("v1/campaigns", ("campaigns:read",), 10, 150, 100)

# GET /api/profiles with additional-fields[profile]=predictive_analytics drops to these
# limits (burst per second, steady per minute) in both revisions; the spec says so in the
# operation's description rather than in x-klaviyo-ratelimit.
PREDICTIVE_PROFILES_LIMITS = (10, 150)
PREDICTIVE_FIELDS = "subscriptions,predictive_analytics"


def endpoint(revision: str, name: str) -> Endpoint | None:
    """The endpoint as `revision` defines it; None where that revision has no such endpoint (forms on 2023-10-15)."""
    return ENDPOINTS[revision].get(name)
