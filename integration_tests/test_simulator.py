"""The simulator behaves like Klaviyo: spec-shaped answers, its checks, keys, data rules and faults."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Sizes, key_without
from integration_tests.klaviyo_sim.contract import ResponseContract
from integration_tests.klaviyo_sim.data import DAY, iso
from integration_tests.klaviyo_sim.resources import CURRENT, RETIRED, path_of

REVISIONS = [CURRENT, RETIRED]
COLLECTIONS = ["campaigns", "templates", "profiles", "events", "metrics", "lists", "segments", "flows"]
MAX_PAGE = {
    "campaigns": 100,
    "templates": 10,
    "profiles": 100,
    "events": 1000,
    "lists": 10,
    "segments": 10,
    "flows": 50,
}


def get(
    sim,
    collection: str,
    params: dict | None = None,
    revision: str = CURRENT,
    key: str = FULL_ACCESS_KEY,
    url: str | None = None,
):
    headers = {"revision": revision, "Authorization": f"Klaviyo-API-Key {key}", "Accept": "application/vnd.api+json"}
    return requests.get(url or sim.url + path_of(collection, revision), params=params, headers=headers, timeout=10)


def post_aggregate(sim, attributes: dict, revision: str = CURRENT):
    headers = {
        "revision": revision,
        "Authorization": f"Klaviyo-API-Key {FULL_ACCESS_KEY}",
        "Content-Type": "application/vnd.api+json",
    }
    body = {"data": {"type": "metric-aggregate", "attributes": attributes}}
    return requests.post(sim.url + path_of("metric-aggregates", revision), json=body, headers=headers, timeout=10)


def first_page_params(collection: str, revision: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if collection in MAX_PAGE and not (
        revision == RETIRED and collection in ("campaigns", "templates", "events", "lists", "segments")
    ):
        params["page[size]"] = MAX_PAGE[collection]
    if collection == "campaigns":
        params["filter"] = "equals(messages.channel,'email')"
    if collection == "events":
        params["include"] = "metric,profile"
    if collection == "profiles":
        params["additional-fields[profile]"] = "subscriptions,predictive_analytics"
    return params


def read_all(sim, collection: str, params: dict, revision: str = CURRENT) -> list[dict]:
    data, response = [], get(sim, collection, params, revision)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        data += body["data"]
        if not body["links"].get("next"):
            return data
        response = get(sim, collection, revision=revision, url=body["links"]["next"])


@pytest.mark.parametrize("revision", REVISIONS)
@pytest.mark.parametrize("collection", COLLECTIONS)
def test_answers_match_the_revisions_response_schema(klaviyo_sim, collection, revision):
    response = get(klaviyo_sim, collection, first_page_params(collection, revision), revision)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"], "the page holds resources"
    expected_type = "application/json" if revision == RETIRED else "application/vnd.api+json"
    assert response.headers["Content-Type"] == expected_type
    assert ResponseContract(revision).errors("GET", path_of(collection, revision), body) == []


@pytest.mark.parametrize("revision", REVISIONS)
def test_metric_aggregates_answer_matches_the_response_schema(klaviyo_sim, revision):
    now = datetime.fromtimestamp(klaviyo_sim.dataset.now, timezone.utc)
    attributes = {
        "metric_id": klaviyo_sim.dataset.metrics[0].id,
        "measurements": ["count", "sum_value", "unique"],
        "filter": [
            f"greater-or-equal(datetime,{(now - timedelta(days=30)).date()}T00:00:00)",
            f"less-than(datetime,{now.date()}T00:00:00)",
        ],
        "by": ["$attributed_flow"],
        "interval": "week",
    }
    response = post_aggregate(klaviyo_sim, attributes, revision)
    assert response.status_code == 200, response.text
    assert ResponseContract(revision).errors("POST", path_of("metric-aggregates", revision), response.json()) == []


@pytest.mark.parametrize(
    "collection, params, parameter, words",
    [
        ("lists", {"bogus": "1"}, "bogus", "is not a valid query parameter"),
        ("lists", {"page[size]": "11"}, "page[size]", "above the maximum of 10"),
        (
            "lists",
            {"filter": "less-than(updated,2024-01-01T00:00:00Z)"},
            "filter",
            "not a valid operator for 'updated'",
        ),
        ("events", {"filter": "greater-than(color,'red')"}, "filter", "'color' is not a valid field"),
        ("events", {"filter": "greater-than(datetime,yesterday)"}, "filter", "not a valid ISO-8601 datetime"),
        ("events", {"sort": "name"}, "sort", "not a valid choice"),
        ("campaigns", {}, "filter", "'filter' is a required parameter"),
        ("campaigns", {"filter": "equals(archived,true)"}, "filter", "channel filter is required"),
        ("profiles", {"additional-fields[profile]": "everything"}, "additional-fields[profile]", "not one of"),
    ],
)
def test_requests_outside_the_spec_get_klaviyos_400(klaviyo_sim, collection, params, parameter, words):
    response = get(klaviyo_sim, collection, params)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["source"]["parameter"] == parameter and words in error["detail"], error


def test_paths_must_be_written_as_the_revision_writes_them(klaviyo_sim):
    assert get(klaviyo_sim, "lists", url=klaviyo_sim.url + "/api/lists/").status_code == 404
    assert get(klaviyo_sim, "lists", revision=RETIRED, url=klaviyo_sim.url + "/api/lists").status_code == 404
    assert get(klaviyo_sim, "lists", revision="2024-02-15").status_code == 400


def test_a_wrong_key_gets_401_and_a_key_without_a_scope_gets_403_on_that_endpoint_only(klaviyo_sim):
    assert get(klaviyo_sim, "lists", key="pk_wrong").status_code == 401
    limited = key_without("lists:read")
    denied = get(klaviyo_sim, "lists", key=limited)
    assert denied.status_code == 403 and "lists:read" in denied.json()["errors"][0]["detail"]
    assert get(klaviyo_sim, "metrics", key=limited).status_code == 200
    assert get(klaviyo_sim, "lists", revision=RETIRED, key=limited).status_code == 200, "2023-10-15 asks for list:read"


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data():
    now = 1_790_000_000
    first, again, other = (Dataset(seed=seed, now=now, sizes=Sizes(events=500, profiles=50)) for seed in (1, 1, 2))
    assert [r.id for r in first.lists] == [r.id for r in again.lists]
    assert [first.events.record(i).attributes for i in range(0, 500, 50)] == [
        again.events.record(i).attributes for i in range(0, 500, 50)
    ]
    assert [r.id for r in first.lists] != [r.id for r in other.lists]


def test_timestamps_are_relative_to_now_and_events_fill_their_window_unevenly():
    now = 1_790_000_000
    dataset = Dataset(seed=3, now=now, sizes=Sizes(events=20_000, event_days=60))
    assert all(
        record.visible_from <= now for record in dataset.lists + dataset.flows + dataset.campaigns + dataset.templates
    )
    times = [dataset.events.time(i) for i in range(dataset.events.count)]
    assert times == sorted(times) and times[0] >= now - 60 * DAY and times[-1] < now
    per_day = Counter((t - times[0]) // DAY for t in times)
    assert max(per_day.values()) > 4 * (20_000 / 60), "one busy day"
    assert len(per_day) <= 60 - 6, "a quiet week without events"


def test_filters_sort_and_paging_return_exactly_the_matching_records_once(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    cutoff = sorted(record.times["updated"] for record in dataset.lists)[10]
    records = read_all(
        klaviyo_sim, "lists", {"filter": f"greater-than(updated,{iso(cutoff)})", "sort": "-updated", "page[size]": 4}
    )
    expected = sorted(
        (r for r in dataset.lists if r.times["updated"] > cutoff), key=lambda r: r.times["updated"], reverse=True
    )
    assert [r["id"] for r in records] == [r.id for r in expected]

    start, end = dataset.events.time(500), dataset.events.time(1500)
    window = f"greater-or-equal(datetime,{iso(start)}),less-than(datetime,{iso(end)})"
    events = read_all(klaviyo_sim, "events", {"filter": window, "page[size]": 100})
    expected_ids = [
        dataset.events.record(i).id for i in range(dataset.events.count) if start <= dataset.events.time(i) < end
    ]
    assert [e["id"] for e in events] == expected_ids


def test_event_filters_on_metric_and_include_metric(klaviyo_sim):
    metric = klaviyo_sim.dataset.metrics[2]
    response = get(
        klaviyo_sim, "events", {"filter": f"equals(metric_id,'{metric.id}')", "include": "metric", "page[size]": 50}
    )
    body = response.json()
    assert body["data"] and all(e["relationships"]["metric"]["data"]["id"] == metric.id for e in body["data"])
    assert [(i["type"], i["id"]) for i in body["included"]] == [("metric", metric.id)]
    assert body["included"][0]["attributes"]["name"] == metric.attributes["name"]


def test_metric_aggregates_equal_a_count_of_the_simulators_events(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    metric = dataset.metrics[0]
    now = datetime.fromtimestamp(dataset.now, timezone.utc)
    start = (now - timedelta(days=20)).replace(hour=0, minute=0, second=0)
    end = (now - timedelta(days=2)).replace(hour=0, minute=0, second=0)
    attributes = {
        "metric_id": metric.id,
        "measurements": ["count", "sum_value"],
        "filter": [
            f"greater-or-equal(datetime,{start:%Y-%m-%dT%H:%M:%S})",
            f"less-than(datetime,{end:%Y-%m-%dT%H:%M:%S})",
        ],
        "interval": "day",
    }
    body = post_aggregate(klaviyo_sim, attributes).json()["data"]["attributes"]
    counts, sums = Counter(), Counter()
    for index in range(dataset.events.count):
        event = dataset.events.record(index)
        if event.fields["metric_id"] == metric.id and start.timestamp() <= event.times["datetime"] < end.timestamp():
            day = datetime.fromtimestamp(event.times["datetime"], timezone.utc).strftime("%Y-%m-%d")
            counts[day] += 1
            sums[day] += event.attributes["event_properties"]["$value"]
    days = [date[:10] for date in body["dates"]]
    assert len(days) == 18
    (row,) = body["data"]
    assert row["measurements"]["count"] == [counts[day] for day in days]
    assert row["measurements"]["sum_value"] == pytest.approx([round(sums[day], 2) for day in days])


def test_metric_aggregates_refuse_ranges_over_a_year(klaviyo_sim):
    attributes = {
        "metric_id": klaviyo_sim.dataset.metrics[0].id,
        "measurements": ["count"],
        "filter": ["greater-or-equal(datetime,2024-01-01T00:00:00)", "less-than(datetime,2025-01-03T00:00:00)"],
    }
    response = post_aggregate(klaviyo_sim, attributes)
    assert response.status_code == 400 and "at most one year" in response.json()["errors"][0]["detail"]
    bad = post_aggregate(klaviyo_sim, {**attributes, "measurements": ["median"]})
    assert bad.status_code == 400 and "median" in bad.json()["errors"][0]["detail"]


def test_legacy_v1_campaigns_page_with_page_and_count_and_can_answer_gone(klaviyo_sim):
    url = klaviyo_sim.url + "/api/v1/campaigns"
    pages = [
        requests.get(url, params={"api_key": FULL_ACCESS_KEY, "page": page, "count": 7}, timeout=10).json()
        for page in range(5)
    ]
    ids = [item["id"] for page in pages for item in page["data"]]
    assert pages[0]["total"] == len(klaviyo_sim.dataset.campaigns) == len(ids) == len(set(ids))
    assert pages[0]["data"][0]["object"] == "campaign" and len(pages[0]["data"][0]["created"]) == 19
    assert requests.get(url, params={"api_key": "pk_wrong"}, timeout=10).status_code == 403
    klaviyo_sim.faults.v1_gone = True
    assert requests.get(url, params={"api_key": FULL_ACCESS_KEY}, timeout=10).status_code == 410


def test_rate_limits_answer_429_with_retry_after_past_the_burst(klaviyo_sim):
    klaviyo_sim.faults.rate_limit_scale = 0.2  # flows: 3/s -> 1 per second (never below one)
    answers = [get(klaviyo_sim, "flows") for _ in range(3)]
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(429) >= 1, statuses
    throttled = next(answer for answer in answers if answer.status_code == 429)
    assert throttled.headers["Retry-After"] in ("1", "2")
    assert throttled.json()["errors"][0]["code"] == "throttled"
    ok = answers[0]
    assert ok.headers["RateLimit-Limit"] == "1" and ok.headers["RateLimit-Remaining"] == "0"


def test_a_competing_client_leaves_a_smaller_share_of_each_window(klaviyo_sim):
    klaviyo_sim.faults.competing_share = 0.5  # lists: 75/s -> 37 left for us
    statuses = Counter(get(klaviyo_sim, "lists").status_code for _ in range(45))
    assert statuses[429] >= 1 and statuses[200] <= 37


@pytest.mark.parametrize(
    "fault, failure",
    [
        ({"error_rate": 1.0}, lambda r: r.status_code in (500, 502, 503, 504)),
        ({"truncate_rate": 1.0}, lambda r: r.status_code == 200 and _not_json(r)),
    ],
)
def test_faults_disturb_answers(klaviyo_sim, fault, failure):
    klaviyo_sim.faults.update(fault)
    assert failure(get(klaviyo_sim, "lists"))


def test_connection_resets_end_the_request_without_an_answer(klaviyo_sim):
    klaviyo_sim.faults.reset_rate = 1.0
    with pytest.raises(requests.exceptions.ConnectionError):
        get(klaviyo_sim, "lists")


def test_latency_delays_every_answer(klaviyo_sim):
    klaviyo_sim.faults.latency_ms = 150
    started = datetime.now()
    get(klaviyo_sim, "metrics")
    assert datetime.now() - started >= timedelta(milliseconds=150)


def test_held_back_records_appear_after_reveal(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    dataset.hold_back(200 * DAY)
    hidden = {r.id for r in dataset.lists if r.visible_from > dataset.visible_until}
    before = {r["id"] for r in read_all(klaviyo_sim, "lists", {"page[size]": 10})}
    assert hidden and not (before & hidden)
    requests.post(klaviyo_sim.url + "/__sim/reveal", timeout=10)
    after = {r["id"] for r in read_all(klaviyo_sim, "lists", {"page[size]": 10})}
    assert after == before | hidden


def _not_json(response) -> bool:
    try:
        response.json()
    except ValueError:
        return True
    return False
