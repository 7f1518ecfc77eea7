"""One API budget per account: each endpoint held under 90% of Klaviyo's burst and steady limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from airbyte_cdk.sources.streams.call_rate import CallRateLimitHit

from source_klaviyo.endpoints import ENDPOINTS, KLAVIYO_API_URL
from source_klaviyo.errors import RetryAfterBackoff
from source_klaviyo.rate_limits import build_budget, usable


def request(path, method="GET"):
    return requests.Request(method, KLAVIYO_API_URL + path, params={"page[size]": 10}).prepare()


def response(status, headers=None):
    answer = requests.Response()
    answer.status_code = status
    answer.headers.update(headers or {})
    return answer


def drain(budget, prepared, calls):
    for _ in range(calls):
        budget.acquire_call(prepared, block=False)


@pytest.mark.parametrize("revision", ["2026-07-15", "2023-10-15"])
def test_each_endpoint_has_its_own_policy_at_ninety_percent_of_both_windows(revision):
    budget = build_budget(KLAVIYO_API_URL, revision)
    for endpoint in ENDPOINTS[revision].values():
        if endpoint.burst_per_second < 3:
            continue  # the Reporting API's small limits: see the next test
        policy = budget.get_matching_policy(request(endpoint.path(revision)))
        assert policy is not None, endpoint.name
        rates = [(rate.limit, rate.interval) for rate in policy._bucket.rates]
        assert rates == [
            (usable(endpoint.burst_per_second), 1000),
            (usable(endpoint.steady_per_minute), 60_000),
        ]


def test_the_reporting_api_keeps_its_two_calls_a_minute_over_a_minute_and_a_tenth():
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    policy = budget.get_matching_policy(request("api/flow-series-reports", "POST"))
    assert [(rate.limit, rate.interval) for rate in policy._bucket.rates] == [(1, 1111), (2, 66_666)]


def test_usable_share_never_drops_below_one_call():
    assert usable(1) == 1 and usable(3) == 2 and usable(3500) == 3150


def test_the_burst_window_stops_the_call_after_the_limit():
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    flows = request("api/flows")
    drain(budget, flows, usable(3))
    with pytest.raises(CallRateLimitHit) as hit:
        budget.acquire_call(flows, block=False)
    assert timedelta(0) < hit.value.time_to_wait <= timedelta(seconds=1)
    budget.acquire_call(request("api/metrics"), block=False)  # other endpoints keep their own budget


def test_no_calls_remaining_pauses_the_endpoint():
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    events = request("api/events")
    budget.acquire_call(events, block=False)
    budget.update_from_response(events, response(200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "41"}))
    with pytest.raises(CallRateLimitHit):
        budget.acquire_call(events, block=False)


def test_a_429_is_waited_out_per_request_not_by_filling_the_minute_window():
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    events = request("api/events")
    throttled = response(429, {"Retry-After": "3"})
    for _ in range(usable(3500)):  # as many 429s as the minute allows calls: each would have filled a burst
        budget.update_from_response(events, throttled)
    drain(budget, events, 10)
    assert RetryAfterBackoff().backoff_time(throttled, attempt_count=1) == 3


def test_remaining_calls_above_zero_leave_the_budget_alone():
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    events = request("api/events")
    budget.update_from_response(events, response(200, {"RateLimit-Remaining": "12", "RateLimit-Reset": "41"}))
    drain(budget, events, 10)


@pytest.mark.parametrize("revision", ["2026-07-15", "2023-10-15"])
def test_profiles_with_predictive_analytics_get_their_lower_tier(revision):
    budget = build_budget(KLAVIYO_API_URL, revision)
    path = ENDPOINTS[revision]["profiles"].path(revision)
    predictive = requests.Request(
        "GET", KLAVIYO_API_URL + path, params={"additional-fields[profile]": "subscriptions,predictive_analytics"}
    ).prepare()
    plain = requests.Request(
        "GET", KLAVIYO_API_URL + path, params={"additional-fields[profile]": "subscriptions"}
    ).prepare()

    def limits(prepared):
        return [rate.limit for rate in budget.get_matching_policy(prepared)._bucket.rates]

    assert limits(predictive) == [usable(10), usable(150)]
    profiles = ENDPOINTS[revision]["profiles"]
    assert limits(plain) == [usable(profiles.burst_per_second), usable(profiles.steady_per_minute)]
