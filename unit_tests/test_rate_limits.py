"""One API budget per account: each endpoint held under 90% of Klaviyo's burst and steady limits, or of the
connector's `rate_limit_share` of them."""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from datetime import timedelta

import pytest
import requests
from airbyte_cdk.sources.streams.call_rate import CallRateLimitHit

from source_klaviyo.endpoints import ENDPOINTS, KLAVIYO_API_URL
from source_klaviyo.errors import RetryAfterBackoff
from source_klaviyo.rate_limits import HEADROOM, PACE, build_budget, usable, whole_share


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
        burst = usable(endpoint.burst_per_second)
        paced = [(-(-burst // 10), 100)] if burst >= 10 else []
        assert rates == [*paced, (burst, 1000), (usable(endpoint.steady_per_minute), 60_000)]


def test_the_reporting_api_keeps_its_two_calls_a_minute_over_a_minute_and_a_tenth():
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    policy = budget.get_matching_policy(request("api/flow-series-reports", "POST"))
    assert [(rate.limit, rate.interval) for rate in policy._bucket.rates] == [(1, 1111), (2, 66_666)]


def test_usable_share_never_drops_below_one_call():
    assert usable(1) == 1 and usable(3) == 2 and usable(3500) == 3150


def rates_of(budget, path, method="GET"):
    return [(rate.limit, rate.interval) for rate in budget.get_matching_policy(request(path, method))._bucket.rates]


@pytest.mark.parametrize(
    "path, method, share, rates",
    [
        ("api/events", "GET", 1.0, [(32, 100), (315, 1000), (3150, 60_000)]),
        ("api/events", "GET", 0.5, [(16, 100), (157, 1000), (1575, 60_000)]),
        ("api/profiles", "GET", 0.5, [(4, 100), (33, 1000), (337, 60_000)]),
        ("api/flows", "GET", 0.5, [(1, 1000), (27, 60_000)]),  # 1.5 calls a second: the one whole call
        ("api/flows", "GET", 0.1, [(1, 3703), (5, 60_000)]),  # 0.3 calls a second: one every 3.7 s
        ("api/flow-series-reports", "POST", 0.5, [(1, 2222), (1, 66_666)]),
        ("api/flow-series-reports", "POST", 0.1, [(1, 11_111), (1, 333_333)]),
    ],
)
def test_each_window_holds_the_share_of_klaviyo_s_limit_less_the_headroom(path, method, share, rates):
    assert rates_of(build_budget(KLAVIYO_API_URL, "2026-07-15", share), path, method) == rates


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
@pytest.mark.parametrize("revision", ["2026-07-15", "2023-10-15"])
def test_no_window_of_klaviyo_s_sees_more_than_the_share_s_whole_calls_nor_half_its_average_lost(revision, share):
    budget = build_budget(KLAVIYO_API_URL, revision, share)
    for endpoint in ENDPOINTS[revision].values():
        method = "POST" if endpoint.per_day else "GET"
        counted = rates_of(budget, endpoint.path(revision), method)[-2:]  # the burst's and the steady's
        for (limit, window), (calls, interval) in zip(
            [(endpoint.burst_per_second, 1000), (endpoint.steady_per_minute, 60_000)], counted, strict=True
        ):
            allowed = limit * share * HEADROOM / window  # calls a millisecond
            assert interval >= window and calls <= max(1, math.floor(limit * share)), (endpoint.name, limit)
            assert allowed / 2 <= calls / interval <= allowed * 1.001, (endpoint.name, limit)  # 1.001: ms rounding


def test_the_reporting_api_s_daily_quota_is_the_share_s_whole_requests_without_headroom():
    assert [whole_share(225, share) for share in (1.0, 0.5, 0.1)] == [225, 112, 22]


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
    burst = usable(profiles.burst_per_second)
    assert limits(plain) == [-(-burst // 10), burst, usable(profiles.steady_per_minute)]


@pytest.mark.realtime  # counts calls on the clock: a busy core shifts the times it records
def test_a_burst_is_spent_a_tenth_at_a_time_so_calls_counted_in_any_second_and_a_tenth_stay_within_it():
    """Calls that arrive up to PACE after the budget counted them still fit Klaviyo's fixed second."""
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    events = request("api/events")
    published = ENDPOINTS["2026-07-15"]["events"].burst_per_second
    counted = []
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        budget.acquire_call(events)
        counted.append(time.monotonic())
    window = 1 + PACE.total_seconds()
    assert len(counted) > published  # the read spent more than one burst
    assert max(bisect_left(counted, at + window) - i for i, at in enumerate(counted)) <= published
    assert max(bisect_left(counted, at + 1) - i for i, at in enumerate(counted)) <= usable(published)


@pytest.mark.realtime  # counts calls on the clock: a busy core shifts the times it records
def test_threads_waiting_for_a_full_window_take_turns_instead_of_all_retrying_when_it_frees():
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    flows = request("api/flows")
    policy = budget.get_matching_policy(flows)
    drain(budget, flows, usable(3))
    tries = []
    try_acquire = policy.try_acquire

    def counted_try(*args, **kwargs):
        tries.append(threading.get_ident())
        return try_acquire(*args, **kwargs)

    policy.try_acquire = counted_try
    waiters = [threading.Thread(target=budget.acquire_call, args=(flows,)) for _ in range(6)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join(10)
    assert not any(waiter.is_alive() for waiter in waiters)
    # Three windows of a second for six calls: the caller at the head of the line tries when a window frees
    # (plus a retry when the millisecond wait rounds short), the next takes the second call. Without turns,
    # every waiting caller tried at every window (24 to 28 tries measured).
    assert len(tries) <= 2 * 6
