"""The endpoint table (paths, scopes, page sizes, rate limits) agrees with Klaviyo's spec of each revision."""

from __future__ import annotations

import pytest

from source_klaviyo.endpoints import ENDPOINTS, REVISIONS

CASES = [(revision, name) for revision in REVISIONS for name in ENDPOINTS[revision]]


@pytest.mark.parametrize("revision, name", CASES)
def test_endpoint_facts_match_the_spec(contract, revision, name):
    spec = contract.revision(revision)
    facts = ENDPOINTS[revision][name]
    method = "post" if name == "metric-aggregates" else "get"
    operation = spec.operation(method, "/" + facts.path(revision))

    assert operation["x-klaviyo-scopes"] == [facts.scope]
    limits = operation["x-klaviyo-ratelimit"]
    assert limits["burst"] == f"{facts.burst_per_second}/s"
    assert limits["steady"] == f"{facts.steady_per_minute}/m"
    page_size = [p for p in spec.parameters(operation) if p["name"] == "page[size]"]
    assert (page_size[0]["schema"]["maximum"] if page_size else None) == facts.max_page_size


def test_both_revisions_cover_the_same_endpoints():
    assert set(ENDPOINTS["2026-07-15"]) == set(ENDPOINTS["2023-10-15"])
