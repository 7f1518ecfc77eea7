"""The endpoint table (paths, scopes, page sizes, rate limits) agrees with Klaviyo's spec of each revision."""

from __future__ import annotations

import pytest

from klaviyo_spec.contract import request_contract
from source_klaviyo.endpoints import BODY_MEDIA_TYPE, ENDPOINTS, POST_ENDPOINTS, REVISIONS

CASES = [(revision, name) for revision in REVISIONS for name in ENDPOINTS[revision]]


@pytest.mark.parametrize("revision, name", CASES)
def test_endpoint_facts_match_the_spec(revision, name):
    facts = ENDPOINTS[revision][name]
    method = "POST" if name in POST_ENDPOINTS else "GET"
    operation = request_contract(revision).operation(method, "/" + facts.path(revision))

    assert operation is not None, "the path is written as the revision writes it"
    assert sorted(operation.scopes) == sorted(facts.scopes)
    assert (operation.burst, operation.steady) == (facts.burst_per_second, facts.steady_per_minute)
    assert operation.query.get("page[size]", {}).get("maximum") == facts.max_page_size
    assert operation.daily == (facts.per_day or 0)
    assert operation.body_content_type == (BODY_MEDIA_TYPE[revision] if method == "POST" else None)


def test_both_revisions_cover_the_same_endpoints_but_forms_accounts_and_reports_which_2023_10_15_does_not_have():
    assert set(ENDPOINTS["2026-07-15"]) - set(ENDPOINTS["2023-10-15"]) == {"forms", "accounts"} | {
        name for name in POST_ENDPOINTS if name.endswith("-reports")
    }
    assert set(ENDPOINTS["2023-10-15"]) <= set(ENDPOINTS["2026-07-15"])


@pytest.mark.parametrize("revision", REVISIONS)
def test_the_predictive_analytics_tier_is_the_one_the_spec_describes(revision):
    from klaviyo_spec.contract import load_spec
    from source_klaviyo.endpoints import PREDICTIVE_PROFILES_LIMITS

    path = "/" + ENDPOINTS[revision]["profiles"].path(revision)
    description = load_spec(revision)["paths"][path]["get"]["description"]
    tier = description.split("additional-fields[profile]=predictive_analytics", 1)[1]
    burst, steady = PREDICTIVE_PROFILES_LIMITS
    assert f"Burst: `{burst}/s`<br>Steady: `{steady}/m`" in tier
