"""The simulator behaves like Klaviyo: spec-shaped answers, its checks, keys, data rules and faults."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Faults, Simulator, Sizes, key_without
from integration_tests.klaviyo_sim.data import DAY, Events, iso
from integration_tests.klaviyo_sim.reports import KINDS, report
from integration_tests.klaviyo_sim.resources import CURRENT, RETIRED, path_of
from klaviyo_spec.contract import ResponseContract

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
        "Content-Type": "application/json" if revision == "2023-10-15" else "application/vnd.api+json",
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


@pytest.mark.parametrize(
    "collection, size",
    [
        pytest.param("profiles", 20, id="profiles: Default: 20. Min: 1. Max: 100."),
        pytest.param("events", 200, id="events: Default: 200. Min: 1. Max: 1000."),
        pytest.param("lists", 10, id="lists: Default: 10. Min: 1. Max: 10."),
    ],
)
def test_a_request_without_page_size_gets_the_default_its_description_states(klaviyo_sim, collection, size):
    body = get(klaviyo_sim, collection).json()
    assert len(body["data"]) == size and body["links"]["next"]


def test_paths_must_be_written_as_the_revision_writes_them(klaviyo_sim):
    assert get(klaviyo_sim, "lists", url=klaviyo_sim.url + "/api/lists/").status_code == 404
    assert get(klaviyo_sim, "lists", revision=RETIRED, url=klaviyo_sim.url + "/api/lists").status_code == 404
    assert get(klaviyo_sim, "lists", revision="2024-02-15").status_code == 400


def test_a_key_needs_the_scope_of_every_resource_it_includes(klaviyo_sim):
    """Klaviyo's relationships guide: a key needs read access to the endpoint and to each included resource (the
    scopes of the resource's own GET endpoint in the spec)."""
    limited = key_without("tags:read")
    channel = {"filter": "equals(messages.channel,'email')"}
    assert get(klaviyo_sim, "campaigns", channel, key=limited).status_code == 200
    refused = get(klaviyo_sim, "campaigns", {**channel, "include": "tags"}, key=limited)
    assert refused.status_code == 403 and "tags:read" in refused.json()["errors"][0]["detail"]
    assert get(klaviyo_sim, "campaigns", {**channel, "include": "tags"}).status_code == 200


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


def _days_ago(dataset: Dataset, days: int) -> str:
    return f"{(datetime.fromtimestamp(dataset.now, timezone.utc) - timedelta(days=days)).date()}T00:00:00"


@pytest.mark.parametrize("revision", REVISIONS)
@pytest.mark.parametrize(
    "changes, words",
    [
        pytest.param(
            {"filter": ["greater-or-equal(datetime,2024-01-01T00:00:00)", "less-than(datetime,2025-01-03T00:00:00)"]},
            "at most one year",
            id="The time range may span a maximum of one year.",
        ),
        pytest.param(
            {"filter": ["less-than(datetime,2025-01-03T00:00:00)"]},
            "greater-or-equal(datetime,...) and less-than(datetime,...)",
            id="The time range can be filtered by providing a greater-or-equal and a less-than filter on datetime",
        ),
        pytest.param(
            {"days_back": 5 * 366},
            "maximum of 5 years prior to the current date",
            id="Time range dates may be set to a maximum of 5 years prior to the current date",
        ),
        pytest.param(
            {"timezone": "Europe/Kyiv"},
            "not a supported timezone",
            id="a few notable exceptions are `Factory`, `Europe/Kyiv` and `Pacific/Kanton`",
        ),
        pytest.param({"timezone": "america/new_york"}, "not a supported timezone", id="This field is case-sensitive."),
        pytest.param({"measurements": ["median"]}, "median", id="measurements are the spec's"),
    ],
)
def test_metric_aggregates_refuse_what_the_description_rules_out(klaviyo_sim, changes, words, revision):
    dataset = klaviyo_sim.dataset
    changes = dict(changes)  # the parameter is shared by both revisions' runs
    days_back = changes.pop("days_back", 30)
    attributes = {
        "metric_id": dataset.metrics[0].id,
        "measurements": ["count"],
        "filter": [
            f"greater-or-equal(datetime,{_days_ago(dataset, days_back)})",
            f"less-than(datetime,{_days_ago(dataset, days_back - 10)})",
        ],
        **changes,
    }
    response = post_aggregate(klaviyo_sim, attributes, revision)
    assert response.status_code == 400 and words in response.json()["errors"][0]["detail"], response.text
    within = {**attributes, "timezone": "America/New_York", "measurements": ["count"]}
    within["filter"] = [
        f"greater-or-equal(datetime,{_days_ago(dataset, 5 * 365)})",
        f"less-than(datetime,{_days_ago(dataset, 5 * 365 - 10)})",
    ]
    assert post_aggregate(klaviyo_sim, within, revision).status_code == 200, "five years back, in a listed timezone"


@pytest.mark.parametrize(
    "revision, kind, listed, other",
    [
        (CURRENT, "metric-aggregates", "application/vnd.api+json", "application/json"),
        (CURRENT, "campaign-values-reports", "application/vnd.api+json", "application/json"),
        ("2023-10-15", "metric-aggregates/", "application/json", "application/vnd.api+json"),
    ],
)
def test_a_body_must_be_the_one_media_type_the_spec_lists(klaviyo_sim, revision, kind, listed, other):
    """Each revision's requestBody `content` lists one media type: JSON:API's in 2026-07-15, JSON in 2023-10-15."""
    klaviyo_sim.faults.rate_limit_scale = 0  # two report calls in a second: about media types, not limits
    headers = {"revision": revision, "Authorization": f"Klaviyo-API-Key {FULL_ACCESS_KEY}"}
    for content_type in (other, None):
        sent = {**headers, "Content-Type": content_type} if content_type else headers
        response = requests.post(f"{klaviyo_sim.url}/api/{kind}", data=b"{}", headers=sent, timeout=10)
        assert response.status_code == 415, response.text
        assert listed in response.json()["errors"][0]["detail"]


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


def test_the_other_client_s_calls_so_far_in_a_window_leave_ours_the_rest_of_it(klaviyo_sim):
    klaviyo_sim.faults.competing_share = 0.5  # lists: 37 of the 75 calls a second are the other client's
    klaviyo_sim.limiter.clock = lambda: 1_000_000.99  # late in one second: the other client has made them all
    statuses = Counter(get(klaviyo_sim, "lists").status_code for _ in range(45))
    assert statuses == {200: 38, 429: 7}
    assert klaviyo_sim.stats["competitor_429"] == 0, "we kept to the 38 left to us"


def test_our_calls_beyond_our_share_early_in_a_window_crowd_out_the_other_client_s_later_calls(klaviyo_sim):
    klaviyo_sim.faults.competing_share = 0.5
    klaviyo_sim.limiter.clock = lambda: 1_000_000.01  # early in one second: the other client has made none yet
    statuses = Counter(get(klaviyo_sim, "lists").status_code for _ in range(45))
    assert statuses == {200: 45}
    assert klaviyo_sim.stats["competitor_429"] == 45 - 38, "its 37 calls find room for 30"


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


def test_faults_switched_on_after_records_were_served_disturb_only_the_requests_after_them(klaviyo_sim):
    klaviyo_sim.switch_faults_after_records(klaviyo_sim.stats["records_served"] + 15, {"error_rate": 1.0})
    served = []
    while (answer := get(klaviyo_sim, "lists", {"page[size]": 10})).status_code == 200:
        served.append(len(answer.json()["data"]))
    assert served == [10, 10] and answer.status_code >= 500


def test_connection_resets_end_the_request_without_an_answer(klaviyo_sim):
    klaviyo_sim.faults.reset_rate = 1.0
    with pytest.raises(requests.exceptions.ConnectionError):
        get(klaviyo_sim, "lists")


def test_latency_delays_every_answer(klaviyo_sim):
    klaviyo_sim.faults.latency_ms = 150
    started = time.monotonic()
    get(klaviyo_sim, "metrics")
    assert time.monotonic() - started >= 0.150


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


# -- endpoints under a parent, tags, coupons, forms, catalogs, membership, suppressions, attributions --


def sub_path(parent: str, parent_id: str, child: str, revision: str = CURRENT) -> str:
    """`/api/flows/{id}/flow-actions` for one parent, written as the revision writes it."""
    return f"/api/{parent}/{parent_id}/{child}" + ("/" if revision == RETIRED else "")


def get_path(sim, path: str, params: dict | None = None, revision: str = CURRENT, key: str = FULL_ACCESS_KEY):
    return get(sim, "", params, revision, key, url=sim.url + path)


def read_path(sim, path: str, params: dict | None = None, revision: str = CURRENT) -> tuple[list[dict], list[dict]]:
    """Every page of a path: (data, included)."""
    data, included, response = [], [], get_path(sim, path, params, revision)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        data += body["data"]
        included += body.get("included", [])
        if not body["links"].get("next"):
            return data, included
        response = get(sim, "", revision=revision, url=body["links"]["next"])


def delete(sim, collection: str, record_id: str) -> requests.Response:
    return requests.post(sim.url + "/__sim/delete", json={"collection": collection, "id": record_id}, timeout=10)


def new_endpoint_request(dataset: Dataset, endpoint: str, revision: str) -> tuple[str, str, dict[str, Any]]:
    """(spec path, request path, params) of a first page that holds data and exercises its include=."""
    email_campaign = next(c for c in dataset.campaigns if c.fields["messages.channel"] == "email")
    send_action = next(a for a in dataset.flow_actions if a.relationships["flow-messages"])
    parents = {
        "campaigns/{id}/campaign-messages": email_campaign.id,
        "flows/{id}/flow-actions": dataset.flows[2].id,
        "flow-actions/{id}/flow-messages": send_action.id,
        "lists/{id}/profiles": dataset.lists[0].id,
        "segments/{id}/profiles": dataset.segments[0].id,
        "coupons/{id}/coupon-codes": dataset.coupons[0].id,
    }
    params: dict[str, Any] = {
        "campaigns/{id}/campaign-messages": {"include": "campaign,template"},
        "tags": {"include": "tag-group"},
        "lists/{id}/profiles": {"additional-fields[profile]": "subscriptions,predictive_analytics", "page[size]": 100},
        "segments/{id}/profiles": {"additional-fields[profile]": "subscriptions", "sort": "-joined_group_at"},
        "coupon-codes": {"filter": f"equals(coupon.id,'{dataset.coupons[0].id}')", "include": "coupon"},
        "catalog-items": {"include": "variants", "sort": "-created"},
        "forms": {"sort": "-updated_at"},
    }.get(endpoint, {})
    spec_path = f"/api/{endpoint}" + ("/" if revision == RETIRED else "")
    return spec_path, spec_path.replace("{id}", parents.get(endpoint, "")), params


NEW_ENDPOINTS = [
    "campaigns/{id}/campaign-messages",
    "flows/{id}/flow-actions",
    "flow-actions/{id}/flow-messages",
    "tags",
    "tag-groups",
    "lists/{id}/profiles",
    "segments/{id}/profiles",
    "coupons",
    "coupon-codes",
    "coupons/{id}/coupon-codes",
    "forms",
    "catalog-items",
    "catalog-variants",
    "catalog-categories",
]


@pytest.mark.parametrize("revision", REVISIONS)
@pytest.mark.parametrize("endpoint", NEW_ENDPOINTS)
def test_new_endpoints_answer_the_revisions_response_schema(klaviyo_sim, endpoint, revision):
    spec_path, path, params = new_endpoint_request(klaviyo_sim.dataset, endpoint, revision)
    contract = ResponseContract(revision)
    if spec_path not in contract.document["paths"]:
        assert (endpoint, revision) == ("forms", RETIRED), "only forms are missing from 2023-10-15"
        assert get_path(klaviyo_sim, path, revision=revision).status_code == 404
        return
    response = get_path(klaviyo_sim, path, params, revision)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"], "the page holds resources"
    if "include" in params:
        assert body["included"], "the included resources are there"
    assert contract.errors("GET", spec_path, body) == []


@pytest.mark.parametrize("revision", REVISIONS)
def test_flattened_shapes_validate_for_every_channel_and_action(klaviyo_sim, revision):
    """Every campaign message (email, sms, mobile push), flow action and flow message, in both shapes."""
    klaviyo_sim.faults.rate_limit_scale = 0
    dataset, contract = klaviyo_sim.dataset, ResponseContract(revision)
    suffix = "/" if revision == RETIRED else ""
    for campaign in dataset.campaigns:
        path = sub_path("campaigns", campaign.id, "campaign-messages", revision)
        body = get_path(klaviyo_sim, path, {"include": "campaign,template"}, revision).json()
        assert contract.errors("GET", "/api/campaigns/{id}/campaign-messages" + suffix, body) == []
    for flow in dataset.flows:
        body = get_path(klaviyo_sim, sub_path("flows", flow.id, "flow-actions", revision), None, revision).json()
        assert contract.errors("GET", "/api/flows/{id}/flow-actions" + suffix, body) == []
    for action in dataset.flow_actions:
        path = sub_path("flow-actions", action.id, "flow-messages", revision)
        body = get_path(klaviyo_sim, path, None, revision).json()
        assert contract.errors("GET", "/api/flow-actions/{id}/flow-messages" + suffix, body) == []


def test_campaign_messages_are_the_campaigns_own_and_include_their_campaign_and_template(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    for campaign in dataset.campaigns[:8]:
        path = sub_path("campaigns", campaign.id, "campaign-messages")
        body = get_path(klaviyo_sim, path, {"include": "campaign,template"}).json()
        assert [m["id"] for m in body["data"]] == campaign.relationships["campaign-messages"]
        assert [r.id for r in dataset.children("campaign-messages", campaign.id)] == [m["id"] for m in body["data"]]
        assert 1 <= len(body["data"]) <= 2 and "next" not in body["links"], "not paged: all messages at once"
        channel = campaign.fields["messages.channel"]
        for message in body["data"]:
            assert message["attributes"]["definition"]["channel"] == channel
            assert message["relationships"]["campaign"]["data"] == {"type": "campaign", "id": campaign.id}
        linked = [m["relationships"]["template"].get("data") for m in body["data"]]
        templates = {link["id"] for link in linked if link}
        assert (channel == "mobile_push") == (not templates), "push messages have no template"
        assert {(i["type"], i["id"]) for i in body["included"]} == {("campaign", campaign.id)} | {
            ("template", template) for template in templates
        }


@pytest.mark.parametrize("channel", ["email", "sms", "mobile_push"])
def test_campaigns_split_three_ways_by_channel(klaviyo_sim, channel):
    dataset = klaviyo_sim.dataset
    records = read_all(klaviyo_sim, "campaigns", {"filter": f"equals(messages.channel,'{channel}')"})
    expected = [c.id for c in dataset.campaigns if c.fields["messages.channel"] == channel and not c.fields["archived"]]
    assert [r["id"] for r in records] == expected and expected
    body = get(klaviyo_sim, "campaigns", {"filter": f"equals(messages.channel,'{channel}')"}).json()
    assert ResponseContract(CURRENT).errors("GET", "/api/campaigns", body) == []


def test_the_retired_revision_knows_only_email_and_sms_campaigns(klaviyo_sim):
    response = get(klaviyo_sim, "campaigns", {"filter": "equals(messages.channel,'mobile_push')"}, RETIRED)
    assert response.status_code == 400
    assert "not a valid channel" in response.json()["errors"][0]["detail"]


@pytest.mark.parametrize("revision", REVISIONS)
def test_archived_flows_are_listed_only_when_the_filter_asks(klaviyo_sim, revision):
    dataset = klaviyo_sim.dataset
    klaviyo_sim.faults.rate_limit_scale = 0
    archived = {f.id for f in dataset.flows if f.fields["archived"]}
    assert archived, "some flows are archived"
    listed = {f["id"] for f in read_all(klaviyo_sim, "flows", {}, revision)}
    assert listed == {f.id for f in dataset.flows} - archived
    asked = read_all(klaviyo_sim, "flows", {"filter": "equals(archived,true)"}, revision)
    assert {f["id"] for f in asked} == archived and all(f["attributes"]["archived"] for f in asked)


def test_flow_actions_are_the_flows_relationship_and_filter_sort_and_page(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    klaviyo_sim.faults.rate_limit_scale = 0
    for flow in dataset.flows:
        path = sub_path("flows", flow.id, "flow-actions")
        actions, _ = read_path(klaviyo_sim, path, {"page[size]": 1})
        assert [a["id"] for a in actions] == flow.relationships["flow-actions"]
        assert all(a["relationships"]["flow"]["data"]["id"] == flow.id for a in actions)
        records = dataset.children("flow-actions", flow.id)
        assert all(r.fields["flow.id"] == flow.id for r in records)
    flow = next(f for f in dataset.flows if len(f.relationships["flow-actions"]) == 3)
    records = dataset.children("flow-actions", flow.id)
    cutoff = sorted(r.times["updated"] for r in records)[0]
    path = sub_path("flows", flow.id, "flow-actions")
    answer, _ = read_path(klaviyo_sim, path, {"filter": f"greater-than(updated,{iso(cutoff)})", "sort": "-updated"})
    expected = sorted((r for r in records if r.times["updated"] > cutoff), key=lambda r: r.times["updated"])
    assert [a["id"] for a in answer] == [r.id for r in reversed(expected)]
    sends, _ = read_path(klaviyo_sim, path, {"filter": "equals(action_type,'SEND_EMAIL')"})
    assert {a["id"] for a in sends} == {r.id for r in records if r.fields["action_type"] == "SEND_EMAIL"}
    assert get_path(klaviyo_sim, path, {"page[size]": 51}).status_code == 400
    refused = get_path(klaviyo_sim, path, {"filter": "greater-than(trigger_type,'x')"})
    assert refused.status_code == 400 and "not a valid field" in refused.json()["errors"][0]["detail"]


@pytest.mark.parametrize("revision", REVISIONS)
def test_flow_messages_belong_to_send_actions_and_filter_and_sort_on_updated(klaviyo_sim, revision):
    dataset = klaviyo_sim.dataset
    klaviyo_sim.faults.rate_limit_scale = 0
    for action in dataset.flow_actions:
        path = sub_path("flow-actions", action.id, "flow-messages", revision)
        messages, _ = read_path(klaviyo_sim, path, {"sort": "-updated"}, revision)
        sends = action.fields["action_type"] in ("SEND_EMAIL", "SEND_SMS")
        assert [m["id"] for m in messages] == action.relationships["flow-messages"]
        assert len(messages) == (1 if sends else 0)
        for message in messages:
            assert message["relationships"]["flow-action"]["data"]["id"] == action.id
            record = dataset.find("flow-messages", message["id"])
            assert record.fields["flow-action.id"] == action.id and record.fields["flow.id"] == action.fields["flow.id"]
        if messages:
            updated = dataset.find("flow-messages", messages[0]["id"]).times["updated"]
            later, _ = read_path(klaviyo_sim, path, {"filter": f"greater-than(updated,{iso(updated)})"}, revision)
            same, _ = read_path(klaviyo_sim, path, {"filter": f"less-or-equal(updated,{iso(updated)})"}, revision)
            assert later == [] and [m["id"] for m in same] == [messages[0]["id"]]
    path = sub_path("flow-actions", dataset.flow_actions[0].id, "flow-messages", revision)
    maximum = 50 if revision == CURRENT else 100  # 2023-10-15 allows 100 (and names no page[cursor]: one page)
    assert get_path(klaviyo_sim, path, {"page[size]": maximum}, revision).status_code == 200
    assert get_path(klaviyo_sim, path, {"page[size]": maximum + 1}, revision).status_code == 400


@pytest.mark.parametrize("revision", REVISIONS)
def test_tags_belong_to_tag_groups_and_filter_sort_and_include_their_group(klaviyo_sim, revision):
    dataset = klaviyo_sim.dataset
    klaviyo_sim.faults.rate_limit_scale = 0
    groups, _ = read_path(klaviyo_sim, "/api/tag-groups" + ("/" if revision == RETIRED else ""), {}, revision)
    assert [g["id"] for g in groups] == [g.id for g in dataset.collection("tag-groups")]
    assert [g["attributes"]["default"] for g in groups].count(True) == 1, "one default group"
    tags_path = "/api/tags" + ("/" if revision == RETIRED else "")
    tags, included = read_path(klaviyo_sim, tags_path, {"sort": "-name", "include": "tag-group"}, revision)
    expected = sorted(dataset.collection("tags"), key=lambda t: t.attributes["name"], reverse=True)
    assert [t["id"] for t in tags] == [t.id for t in expected]
    for tag, record in zip(tags, expected, strict=True):
        group = tag["relationships"]["tag-group"]["data"]["id"]
        assert group == record.relationships["tag-group"][0] == record.fields["tag-group.id"]
        assert tag["id"] in dataset.find("tag-groups", group).relationships["tags"]
    assert {i["id"] for i in included} == {g.id for g in dataset.tag_groups}
    word = expected[0].attributes["name"].split()[0]
    named, _ = read_path(klaviyo_sim, tags_path, {"filter": f"starts-with(name,'{word}')"}, revision)
    assert {t["id"] for t in named} == {t.id for t in expected if t.attributes["name"].startswith(word)}


@pytest.mark.parametrize("collection", ["campaigns", "flows", "lists", "segments"])
def test_include_tags_fills_included_and_otherwise_only_links_are_sent(klaviyo_sim, collection):
    dataset = klaviyo_sim.dataset
    klaviyo_sim.faults.rate_limit_scale = 0
    params: dict[str, Any] = {"filter": "equals(messages.channel,'email')"} if collection == "campaigns" else {}
    plain = get(klaviyo_sim, collection, params).json()
    for resource in plain["data"]:
        assert set(resource["relationships"]["tags"]) == {"links"}, "a to-many relationship not included"
    assert "included" not in plain
    body = get(klaviyo_sim, collection, {**params, "include": "tags"}).json()
    tag_ids = set()
    for resource in body["data"]:
        record = dataset.find(collection, resource["id"])
        linkage = resource["relationships"]["tags"]["data"]
        assert [t["id"] for t in linkage] == record.relationships["tags"]
        tag_ids |= set(record.relationships["tags"])
    assert tag_ids, "the page carries tags"
    assert {(i["type"], i["id"]) for i in body["included"]} == {("tag", tag) for tag in tag_ids}
    names = {i["id"]: i["attributes"]["name"] for i in body["included"]}
    assert names == {tag: dataset.find("tags", tag).attributes["name"] for tag in tag_ids}
    assert ResponseContract(CURRENT).errors("GET", path_of(collection, CURRENT), body) == []
    # 2023-10-15 requires `data` in every relationship: the linkage is always there, `included` only on request.
    retired = get(klaviyo_sim, collection, params, RETIRED).json()
    assert all("data" in r["relationships"]["tags"] for r in retired["data"]) and "included" not in retired
    retired = get(klaviyo_sim, collection, {**params, "include": "tags"}, RETIRED).json()
    assert {i["id"] for i in retired.get("included", [])} == {
        tag for r in retired["data"] for tag in dataset.find(collection, r["id"]).relationships["tags"]
    }
    assert ResponseContract(RETIRED).errors("GET", path_of(collection, RETIRED), retired) == []


@pytest.mark.parametrize("kind", ["lists", "segments"])
@pytest.mark.parametrize("revision", REVISIONS)
def test_members_of_lists_and_segments_filter_sort_and_page_on_joined_group_at(klaviyo_sim, kind, revision):
    dataset = klaviyo_sim.dataset
    parent = getattr(dataset, kind)[3]
    members = dataset.members(kind, parent.id)
    assert len(members) == round(dataset.profiles.count * dataset.sizes.member_share)
    path = sub_path(kind, parent.id, "profiles", revision)
    everyone, _ = read_path(klaviyo_sim, path, {"page[size]": 7}, revision)
    assert [p["id"] for p in everyone] == [dataset.profiles.ids[i] for i, _ in members]
    assert [p["attributes"]["joined_group_at"] for p in everyone] == [iso(at) for _, at in members]
    for index, joined in members:
        assert joined >= max(parent.times["created"], dataset.profiles.created[index]) and joined < dataset.now
    cutoff = sorted(at for _, at in members)[len(members) // 3]
    window = f"greater-or-equal(joined_group_at,{iso(cutoff)}),less-than(joined_group_at,{iso(dataset.now)})"
    chosen, _ = read_path(
        klaviyo_sim, path, {"filter": window, "sort": "-joined_group_at", "page[size]": 100}, revision
    )
    expected = sorted((m for m in members if m[1] >= cutoff), key=lambda m: m[1], reverse=True)
    assert [p["attributes"]["joined_group_at"] for p in chosen] == [iso(at) for _, at in expected]
    assert {p["id"] for p in chosen} == {dataset.profiles.ids[i] for i, _ in expected}
    assert get_path(klaviyo_sim, path, {"page[size]": 101}, revision).status_code == 400
    refused = get_path(klaviyo_sim, path, {"filter": f"equals(joined_group_at,{iso(cutoff)})"}, revision)
    assert refused.status_code == 400, "joined_group_at takes comparisons only"
    email = dataset.profiles.record(members[0][0]).attributes["email"]
    one, _ = read_path(klaviyo_sim, path, {"filter": f"equals(email,'{email}')"}, revision)
    assert [p["id"] for p in one] == [dataset.profiles.ids[members[0][0]]]


def test_members_show_up_when_they_join(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    parent = dataset.lists[0]
    everyone = dataset.members("lists", parent.id)
    dataset.hold_back(100 * DAY)
    visible = dataset.members("lists", parent.id)
    assert len(visible) < len(everyone)
    assert visible == [(i, at) for i, at in everyone if at <= dataset.visible_until]
    answer, _ = read_path(klaviyo_sim, sub_path("lists", parent.id, "profiles"), {"page[size]": 100})
    assert [p["id"] for p in answer] == [dataset.profiles.ids[i] for i, _ in visible]


def test_profiles_carry_suppressions_and_filter_and_sort_on_their_timestamps(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    profiles = dataset.profiles
    suppressed = [i for i in range(profiles.count) if dataset.suppression(i)]
    listed = [i for i in range(profiles.count) if dataset.list_suppressions(i)]
    assert suppressed and listed
    list_ids = {r.id for r in dataset.lists}
    for i in suppressed:
        reason, at = dataset.suppression(i)
        assert reason in ("HARD_BOUNCE", "INVALID_EMAIL", "SPAM_COMPLAINT", "UNSUBSCRIBE", "USER_SUPPRESSED")
        assert profiles.created[i] <= at <= profiles.updated[i], "not newer than the profile's updated"
    for i in listed:
        for list_id, _, at in dataset.list_suppressions(i):
            assert list_id in list_ids and profiles.created[i] <= at <= profiles.updated[i]

    field = "subscriptions.email.marketing.suppression.timestamp"
    cutoff = sorted(dataset.suppression(i)[1] for i in suppressed)[len(suppressed) // 2]
    params = {
        "filter": f"greater-or-equal({field},{iso(cutoff)})",
        "sort": f"-{field}",
        "additional-fields[profile]": "subscriptions",
        "page[size]": 5,
    }
    answer = read_all(klaviyo_sim, "profiles", params)
    expected = sorted(
        (i for i in suppressed if dataset.suppression(i)[1] >= cutoff), key=lambda i: -dataset.suppression(i)[1]
    )
    assert [p["id"] for p in answer] == [profiles.ids[i] for i in expected]
    for profile, index in zip(answer, expected, strict=True):
        marketing = profile["attributes"]["subscriptions"]["email"]["marketing"]
        reason, at = dataset.suppression(index)
        assert marketing["suppression"] == [{"reason": reason, "timestamp": iso(at)}]
        assert marketing["can_receive_email_marketing"] is False

    field = "subscriptions.email.marketing.list_suppressions.timestamp"
    stamps = sorted(at for i in listed for _, _, at in dataset.list_suppressions(i))
    cutoff = stamps[len(stamps) // 2]
    answer = read_all(klaviyo_sim, "profiles", {"filter": f"less-than({field},{iso(cutoff)})", "page[size]": 100})
    expected_ids = {profiles.ids[i] for i in listed if any(at < cutoff for _, _, at in dataset.list_suppressions(i))}
    assert {p["id"] for p in answer} == expected_ids, "one of its list suppressions satisfies the term"
    ordered = read_all(klaviyo_sim, "profiles", {"sort": field, "page[size]": 100})
    newest = {i: max(at for _, _, at in dataset.list_suppressions(i)) for i in listed}
    assert [p["id"] for p in ordered[: len(listed)]] == [profiles.ids[i] for i in sorted(listed, key=newest.get)]
    assert len(ordered) == profiles.count, "profiles without list suppressions follow"

    one = dataset.list_suppressions(listed[0])[0][0]
    by_list = read_all(klaviyo_sim, "profiles", {"filter": f"equals({field.rsplit('.', 1)[0]}.list_id,'{one}')"})
    assert {p["id"] for p in by_list} == {
        profiles.ids[i] for i in listed if any(list_id == one for list_id, _, _ in dataset.list_suppressions(i))
    }
    body = get(klaviyo_sim, "profiles", {**params, "page[size]": 100}).json()
    assert ResponseContract(CURRENT).errors("GET", "/api/profiles", body) == []
    retired = get(klaviyo_sim, "profiles", {**params, "page[size]": 100}, RETIRED).json()
    assert ResponseContract(RETIRED).errors("GET", "/api/profiles/", retired) == []


def test_suppressions_show_up_at_their_own_time(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    field = "subscriptions.email.marketing.suppression.timestamp"
    params = {"filter": f"greater-than({field},2000-01-01T00:00:00Z)", "page[size]": 100}
    everyone = {p["id"] for p in read_all(klaviyo_sim, "profiles", params)}
    assert everyone == {dataset.profiles.ids[i] for i in dataset.profiles.suppression}
    dataset.hold_back(300 * DAY)
    visible = {p["id"] for p in read_all(klaviyo_sim, "profiles", params)}
    assert visible < everyone
    assert visible == {
        dataset.profiles.ids[i] for i, (_, at) in dataset.profiles.suppression.items() if at <= dataset.visible_until
    }, "whenever the profile itself last changed"


@pytest.mark.parametrize("revision", REVISIONS)
def test_coupon_codes_need_a_coupon_or_profile_filter_and_belong_to_their_coupon(klaviyo_sim, revision):
    dataset = klaviyo_sim.dataset
    suffix = "/" if revision == RETIRED else ""
    refused = get_path(klaviyo_sim, "/api/coupon-codes" + suffix, {}, revision)
    assert refused.status_code == 400 and refused.json()["errors"][0]["source"]["parameter"] == "filter"
    first, second = dataset.coupons[0].id, dataset.coupons[1].id
    codes, included = read_path(
        klaviyo_sim,
        "/api/coupon-codes" + suffix,
        {"filter": f"any(coupon.id,['{first}','{second}'])", "include": "coupon"},
        revision,
    )
    expected = [c for c in dataset.collection("coupon-codes") if c.fields["coupon.id"] in (first, second)]
    assert [c["id"] for c in codes] == [c.id for c in expected] and len(expected) == 2 * dataset.sizes.codes_per_coupon
    assert {i["id"] for i in included} == {first, second}
    for code, record in zip(codes, expected, strict=True):
        assert code["relationships"]["coupon"]["data"]["id"] == record.fields["coupon.id"]
        assert ("profile" in code["relationships"] and "data" in code["relationships"]["profile"]) == bool(
            record.fields["profile.id"]
        )
    own, _ = read_path(klaviyo_sim, sub_path("coupons", first, "coupon-codes", revision), {}, revision)
    assert [c["id"] for c in own] == [c.id for c in dataset.children("coupon-codes", first)]
    assert all(c.fields["coupon.id"] == first for c in dataset.children("coupon-codes", first))
    coupons, _ = read_path(klaviyo_sim, "/api/coupons" + suffix, {}, revision)
    assert [c["id"] for c in coupons] == [c.id for c in dataset.coupons]


def test_forms_exist_only_in_2026_and_filter_and_sort_on_their_times(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    klaviyo_sim.faults.rate_limit_scale = 0
    assert get_path(klaviyo_sim, "/api/forms/", {}, RETIRED).status_code == 404
    forms = dataset.collection("forms")
    cutoff = sorted(f.times["created_at"] for f in forms)[2]
    for field in ("created_at", "updated_at"):
        answer, _ = read_path(
            klaviyo_sim,
            "/api/forms",
            {"filter": f"greater-than(created_at,{iso(cutoff)})", "sort": f"-{field}", "page[size]": 2},
        )
        expected = sorted(
            (f for f in forms if f.times["created_at"] > cutoff), key=lambda f: f.times[field], reverse=True
        )
        assert [f["id"] for f in answer] == [f.id for f in expected]
    live, _ = read_path(klaviyo_sim, "/api/forms", {"filter": "equals(status,'live')"})
    assert {f["id"] for f in live} == {f.id for f in forms if f.fields["status"] == "live"}


@pytest.mark.parametrize("revision", REVISIONS)
def test_catalog_items_variants_and_categories_sort_on_created_and_filter_on_their_links(klaviyo_sim, revision):
    dataset = klaviyo_sim.dataset
    suffix = "/" if revision == RETIRED else ""
    for collection in ("catalog-items", "catalog-variants", "catalog-categories"):
        answer, _ = read_path(klaviyo_sim, f"/api/{collection}{suffix}", {"sort": "-created"}, revision)
        expected = sorted(dataset.collection(collection), key=lambda r: (r.times["created"], r.id), reverse=True)
        assert [r["id"] for r in answer] == [r.id for r in expected]
    item = dataset.catalog_items[0]
    variants, _ = read_path(
        klaviyo_sim, f"/api/catalog-variants{suffix}", {"filter": f"equals(item.id,'{item.id}')"}, revision
    )
    assert [v["id"] for v in variants] == item.relationships["variants"]
    assert all(dataset.find("catalog-variants", v["id"]).fields["item.id"] == item.id for v in variants)
    category = item.relationships["categories"][0]
    items, _ = read_path(
        klaviyo_sim, f"/api/catalog-items{suffix}", {"filter": f"equals(category.id,'{category}')"}, revision
    )
    assert {i["id"] for i in items} == {
        i.id for i in dataset.catalog_items if category in i.relationships["categories"]
    }
    categories, _ = read_path(
        klaviyo_sim, f"/api/catalog-categories{suffix}", {"filter": f"equals(item.id,'{item.id}')"}, revision
    )
    assert {c["id"] for c in categories} == set(item.relationships["categories"])


def test_events_include_attributions_to_real_campaigns_and_flows_with_their_metric(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    params = {"include": "metric,attributions", "page[size]": 500}
    body = get(klaviyo_sim, "events", params).json()
    assert ResponseContract(CURRENT).errors("GET", "/api/events", body) == []
    included = {(i["type"], i["id"]): i for i in body["included"]}
    kinds = Counter()
    for event in body["data"]:
        index = int(event["attributes"]["event_properties"]["$event_id"])
        assert ("metric", event["relationships"]["metric"]["data"]["id"]) in included
        attribution = dataset.events.attribution(index)
        linkage = event["relationships"]["attributions"]["data"]
        if attribution is None:
            assert linkage == []
            continue
        ((_, attribution_id),) = [(link["type"], link["id"]) for link in linkage]
        resource = included[("attribution", attribution_id)]
        related = {name: link["data"]["id"] for name, link in resource["relationships"].items()}
        assert related.pop("event") == event["id"]
        assert related == {name: value for name, value in attribution.items() if value}
        if attribution["campaign"]:
            kinds["campaign"] += 1
            message = dataset.find("campaign-messages", attribution["campaign-message"])
            assert message.fields["campaign.id"] == attribution["campaign"] and dataset.find(
                "campaigns", attribution["campaign"]
            )
            assert event["attributes"]["event_properties"]["$message"] == attribution["campaign"]
        else:
            kinds["flow"] += 1
            message = dataset.find("flow-messages", attribution["flow-message"])
            assert message.fields["flow.id"] == attribution["flow"] and dataset.find("flows", attribution["flow"])
            assert event["attributes"]["event_properties"]["$attributed_flow"] == attribution["flow"]
    assert kinds["campaign"] and kinds["flow"]
    plain = get(klaviyo_sim, "events", {"include": "metric"}).json()
    assert all(set(e["relationships"]["attributions"]) == {"links"} for e in plain["data"])
    assert {i["type"] for i in plain["included"]} == {"metric"}
    retired = get(klaviyo_sim, "events", {"include": "metric,attributions"}, RETIRED)
    assert retired.status_code == 400, "2023-10-15 has no attributions"


@pytest.mark.parametrize(
    "parent, child, collection",
    [
        ("campaigns", "campaign-messages", "campaigns"),
        ("flows", "flow-actions", "flows"),
        ("flow-actions", "flow-messages", "flow-actions"),
        ("lists", "profiles", "lists"),
        ("segments", "profiles", "segments"),
        ("coupons", "coupon-codes", "coupons"),
    ],
)
@pytest.mark.parametrize("revision", REVISIONS)
def test_a_deleted_parent_answers_404_and_disappears(klaviyo_sim, parent, child, collection, revision):
    dataset = klaviyo_sim.dataset
    if parent == "flow-actions":
        record = next(a for a in dataset.flow_actions if a.relationships["flow-messages"])
    else:
        record = dataset.collection(collection)[1]
    path = sub_path(parent, record.id, child, revision)
    assert get_path(klaviyo_sim, path, {}, revision).status_code == 200
    answer = delete(klaviyo_sim, collection, record.id)
    assert answer.status_code == 200 and {"collection": collection, "id": record.id} in answer.json()["deleted"]
    gone = get_path(klaviyo_sim, path, {}, revision)
    assert gone.status_code == 404
    (error,) = gone.json()["errors"]
    assert error["code"] == "not_found" and record.id in error["detail"]
    assert record.id not in {r.id for r in dataset.collection(collection)}
    assert dataset.find(collection, record.id) is None
    assert delete(klaviyo_sim, collection, record.id).status_code == 404, "already gone"


def test_deleting_a_flow_between_two_pages_of_its_actions_answers_404_on_the_second(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    klaviyo_sim.faults.rate_limit_scale = 0
    flow = next(f for f in dataset.flows if len(f.relationships["flow-actions"]) == 3)
    actions = list(flow.relationships["flow-actions"])
    messages = [m for a in actions for m in dataset.find("flow-actions", a).relationships["flow-messages"]]
    first = get_path(klaviyo_sim, sub_path("flows", flow.id, "flow-actions"), {"page[size]": 1}).json()
    deleted = delete(klaviyo_sim, "flows", flow.id).json()["deleted"]
    assert {(d["collection"], d["id"]) for d in deleted} == {("flows", flow.id)} | {
        ("flow-actions", a) for a in actions
    } | {("flow-messages", m) for m in messages}
    second = get(klaviyo_sim, "", url=first["links"]["next"])
    assert second.status_code == 404 and second.json()["errors"][0]["status"] == 404
    assert flow.id not in {f["id"] for f in read_all(klaviyo_sim, "flows", {})}
    assert get_path(klaviyo_sim, sub_path("flow-actions", actions[0], "flow-messages")).status_code == 404
    assert not any(flow.id in tag.relationships["flows"] for tag in dataset.tags)


def test_dataset_delete_removes_a_record_its_children_and_links_to_it():
    dataset = Dataset(seed=5, now=1_790_000_000, sizes=Sizes(events=200, profiles=50))
    campaign = next(c for c in dataset.campaigns if len(c.relationships["campaign-messages"]) == 2)
    tags = [dataset.find("tags", t) for t in campaign.relationships["tags"]]
    deleted = dataset.delete("campaigns", campaign.id)
    assert deleted[0] == ("campaigns", campaign.id) and len(deleted) == 3
    assert campaign not in dataset.campaigns and dataset.children("campaign-messages", campaign.id) == []
    assert all(campaign.id not in tag.relationships["campaigns"] for tag in tags)
    tag = dataset.tags[0]
    dataset.delete("tags", tag.id)
    assert not any(tag.id in r.relationships["tags"] for r in dataset.campaigns + dataset.flows + dataset.lists)
    with pytest.raises(KeyError):
        dataset.delete("campaigns", campaign.id)
    with pytest.raises(KeyError):
        dataset.delete("profiles", dataset.profiles.ids[0])


@pytest.mark.parametrize(
    "scope, path, still_fine",
    [
        ("tags:read", "/api/tags", "/api/campaigns?filter=equals(messages.channel,'email')"),
        ("tags:read", "/api/tag-groups", "/api/lists"),
        ("coupons:read", "/api/coupons", "/api/coupon-codes?filter=equals(coupon.id,'SAVE5')"),
        ("coupon-codes:read", "/api/coupon-codes?filter=equals(coupon.id,'SAVE5')", "/api/coupons"),
        ("coupon-codes:read", "/api/coupons/SAVE5/coupon-codes", "/api/coupons"),
        ("forms:read", "/api/forms", "/api/lists"),
        ("catalogs:read", "/api/catalog-items", "/api/forms"),
        ("catalogs:read", "/api/catalog-categories", "/api/forms"),
        ("profiles:read", "/api/lists/{list}/profiles", "/api/lists"),
        ("lists:read", "/api/lists/{list}/profiles", "/api/profiles"),
        ("segments:read", "/api/segments/{segment}/profiles", "/api/profiles"),
        ("flows:read", "/api/flows/{flow}/flow-actions", "/api/lists"),
    ],
)
def test_keys_without_a_scope_get_403_on_the_new_endpoints(klaviyo_sim, scope, path, still_fine):
    dataset = klaviyo_sim.dataset
    ids = {"list": dataset.lists[0].id, "segment": dataset.segments[0].id, "flow": dataset.flows[0].id}
    key = key_without(scope)
    denied = get(klaviyo_sim, "", key=key, url=klaviyo_sim.url + path.format(**ids))
    assert denied.status_code == 403
    assert f"Missing scope: {scope}." in denied.json()["errors"][0]["detail"], "names exactly what is missing"
    assert get(klaviyo_sim, "", key=key, url=klaviyo_sim.url + still_fine.format(**ids)).status_code == 200


def test_templated_paths_have_their_operations_rate_limit_and_checks(klaviyo_sim):
    dataset = klaviyo_sim.dataset
    klaviyo_sim.faults.rate_limit_scale = 0.2  # flow actions: 3/s -> 1 per second
    klaviyo_sim.limiter.clock = lambda: 2_000_000.5
    first = get_path(klaviyo_sim, sub_path("flows", dataset.flows[0].id, "flow-actions"))
    other_flow = get_path(klaviyo_sim, sub_path("flows", dataset.flows[1].id, "flow-actions"))
    flows = get(klaviyo_sim, "flows")
    assert first.status_code == 200 and first.headers["RateLimit-Limit"] == "1"
    assert other_flow.status_code == 429, "every flow's actions share the operation's bucket"
    assert flows.status_code == 200, "listing flows is another operation"
    klaviyo_sim.faults.rate_limit_scale = 0
    path = sub_path("lists", dataset.lists[0].id, "profiles")
    for params, words in [
        ({"bogus": "1"}, "is not a valid query parameter"),
        ({"filter": "greater-than(created,2024-01-01T00:00:00Z)"}, "'created' is not a valid field"),
        ({"sort": "created"}, "not a valid choice"),
    ]:
        refused = get_path(klaviyo_sim, path, params)
        assert refused.status_code == 400 and words in refused.json()["errors"][0]["detail"]
    assert get_path(klaviyo_sim, path + "/").status_code == 404, "2026-07-15 paths end without a slash"
    assert get_path(klaviyo_sim, f"/api/lists/{dataset.lists[0].id}/tags").status_code == 404, "not simulated"


def test_revisions_without_page_size_serve_fixed_pages():
    sizes = Sizes(tags=60, tag_groups=30, coupons=3, codes_per_coupon=50, profiles=40, events=100)
    simulator = Simulator(Dataset(seed=2, now=1_790_000_000, sizes=sizes), Faults(rate_limit_scale=0))
    with simulator.run_in_thread() as sim:
        for path, size, total in [
            ("/api/tags/", 50, 60),
            ("/api/tag-groups/", 25, 30),
            ("/api/coupon-codes/?filter=any(coupon.id,['SAVE5','SAVE10','SAVE15'])", 100, 150),
        ]:
            first = get(sim, "", revision=RETIRED, url=sim.url + path).json()
            assert len(first["data"]) == size and first["links"]["next"]
            data, _ = read_path(sim, path, None, RETIRED)
            assert len(data) == total == len({d["id"] for d in data})
        assert get(sim, "", revision=RETIRED, url=sim.url + "/api/tags/?page[size]=5").status_code == 400
        assert len(get(sim, "tags", {"page[size]": 50}).json()["data"]) == 50
        assert get(sim, "tag-groups", {"page[size]": 26}).status_code == 400


@pytest.mark.realtime  # times the generation on the clock: a busy core slows it
def test_children_are_generated_fast_and_consistently():
    started = time.perf_counter()
    dataset = Dataset(seed=9, now=1_790_000_000, sizes=Sizes(campaigns=2_000, flows=200, profiles=100, events=100))
    assert time.perf_counter() - started < 1.0
    assert len(dataset.campaign_messages) >= 2_000 and len(dataset.flow_actions) >= 200
    for campaign in dataset.campaigns:
        children = dataset.children("campaign-messages", campaign.id)
        assert [c.id for c in children] == campaign.relationships["campaign-messages"]
        assert all(campaign.times["created_at"] <= c.visible_from <= campaign.visible_from for c in children)
    for flow in dataset.flows:
        actions = dataset.children("flow-actions", flow.id)
        assert [a.id for a in actions] == flow.relationships["flow-actions"]
        assert all(a.visible_from <= flow.visible_from for a in actions)
        for action in actions:
            assert [m.id for m in dataset.children("flow-messages", action.id)] == action.relationships["flow-messages"]
    assert Counter(c.fields["messages.channel"] for c in dataset.campaigns) == {
        "email": 667,
        "sms": 667,
        "mobile_push": 666,
    }


def test_the_command_line_exposes_every_size():
    result = subprocess.run(
        [sys.executable, "-m", "integration_tests.klaviyo_sim", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for item in fields(Sizes):
        assert f"--{item.name.replace('_', '-')}" in result.stdout


# -- accounts and the Reporting API --


REPORT_STATISTICS = {
    "campaign": ["recipients", "delivered", "opens", "opens_unique", "open_rate", "clicks_unique", "conversions"]
    + ["conversion_value", "average_order_value", "unsubscribe_uniques", "text_message_spend", "bounce_rate"],
    "flow": ["recipients", "opens_unique", "open_rate", "click_rate", "conversions", "conversion_uniques"]
    + ["conversion_value", "revenue_per_recipient", "message_segment_count_sum"],
    "form": ["viewed_form", "viewed_form_uniques", "submits", "submit_rate", "closed_form"],
    "segment": ["members_added", "members_removed", "net_members_changed", "total_members"],
}


def report_attributes(dataset: Dataset, kind: str, **changes: Any) -> dict[str, Any]:
    """A valid request of report `kind` (e.g. "flow-series") over the last 30 days (campaigns: the last year)."""
    family, shape = kind.split("-")
    attributes: dict[str, Any] = {
        "statistics": REPORT_STATISTICS[family],
        "timeframe": {"key": "last_365_days" if family == "campaign" else "last_30_days"},
    }
    if family in ("campaign", "flow"):
        placed_order = next(metric for metric in dataset.metrics if metric.attributes["name"] == "Placed Order")
        attributes["conversion_metric_id"] = placed_order.id
    if shape == "series":
        attributes["interval"] = "daily"
    return {**attributes, **changes}


def post_report(sim, kind: str, attributes: dict, key: str = FULL_ACCESS_KEY, url: str | None = None, **options):
    headers = {
        "revision": options.get("revision", CURRENT),
        "Authorization": f"Klaviyo-API-Key {key}",
        "Content-Type": "application/vnd.api+json",
    }
    body = {"data": {"type": options.get("type", f"{kind}-report"), "attributes": attributes}}
    return requests.post(url or f"{sim.url}/api/{kind}-reports", json=body, headers=headers, timeout=30)


def read_report(sim, kind: str, attributes: dict) -> tuple[list[dict], list[dict]]:
    """Every result of a report over its pages (the same body each time), and the page bodies."""
    results, pages, url = [], [], None
    while True:
        response = post_report(sim, kind, attributes, url=url)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        results += pages[-1]["data"]["attributes"]["results"]
        url = pages[-1]["links"].get("next")
        if not url:
            return results, pages


@pytest.fixture
def reporting_sim(klaviyo_sim):
    """The simulator without rate limits: reports allow one request a second and two a minute."""
    klaviyo_sim.faults.rate_limit_scale = 0
    return klaviyo_sim


def test_accounts_answer_the_one_account_in_the_datasets_timezone(reporting_sim):
    response = get(reporting_sim, "accounts")
    assert response.status_code == 200, response.text
    assert ResponseContract(CURRENT).errors("GET", "/api/accounts", response.json()) == []
    (account,) = response.json()["data"]
    assert account["attributes"]["timezone"] == reporting_sim.dataset.sizes.timezone == "America/New_York"
    assert get(reporting_sim, "accounts", key=key_without("accounts:read")).status_code == 403
    retired = get(reporting_sim, "accounts", revision=RETIRED)
    assert retired.status_code == 200, retired.text
    assert ResponseContract(RETIRED).errors("GET", "/api/accounts/", retired.json()) == []


@pytest.mark.parametrize("kind", KINDS)
def test_reports_answer_the_spec_and_equal_the_pure_report_function(reporting_sim, kind):
    dataset = reporting_sim.dataset
    attributes = report_attributes(dataset, kind)
    results, pages = read_report(reporting_sim, kind, attributes)
    for page in pages:
        assert ResponseContract(CURRENT).errors("POST", f"/api/{kind}-reports", page) == []
    expected, date_times = report(dataset, kind, attributes)
    assert results == expected and results, "the same numbers as report(), and some activity"
    assert pages[0]["data"]["attributes"].get("date_times") == date_times
    for result in results:
        assert list(result["statistics"]) == attributes["statistics"]
        for name, value in result["statistics"].items():
            for number in value if date_times else [value]:
                assert not name.endswith("_rate") or 0 <= number <= 1
    if date_times:
        assert all(len(value) == len(date_times) for r in results for value in r["statistics"].values())
        assert date_times[0].endswith(("-04:00", "-05:00")), "bucket starts in the account's timezone"
    family = kind.split("-")[0]
    scope = {"campaign": "campaigns:read", "flow": "flows:read", "form": "forms:read", "segment": "segments:read"}
    assert post_report(reporting_sim, kind, attributes, key=key_without(scope[family])).status_code == 403
    assert post_report(reporting_sim, kind, attributes, revision=RETIRED).status_code == 404, "not in 2023-10-15"


@pytest.mark.parametrize(
    "kind, groupings",
    [
        pytest.param(
            "campaign-values",
            ("campaign_id", "campaign_message_id", "send_channel"),
            id="If not passed in, the data will be grouped by campaign_id, campaign_message_id, send_channel.",
        ),
        pytest.param(
            "flow-series",
            ("flow_id", "flow_message_id", "send_channel"),
            id="If not passed in, the data will be grouped by flow_id, flow_message_id, send_channel.",
        ),
        pytest.param("form-values", ("form_id",), id="If not passed in, the data will be grouped by form_id."),
        pytest.param(
            "segment-values", ("segment_id",), id="segment reports group by segment_id, as in the spec's example"
        ),
    ],
)
def test_a_report_without_group_by_groups_as_its_description_says(reporting_sim, kind, groupings):
    results, _ = read_report(reporting_sim, kind, report_attributes(reporting_sim.dataset, kind))
    assert results and {tuple(result["groupings"]) for result in results} == {groupings}


def test_send_channels_filters_and_form_versions(reporting_sim):
    dataset = reporting_sim.dataset
    campaigns, _ = report(dataset, "campaign-values", report_attributes(dataset, "campaign-values"))
    assert {r["groupings"]["send_channel"] for r in campaigns} <= {"email", "sms", "push-notification"}
    flows, _ = report(dataset, "flow-values", report_attributes(dataset, "flow-values"))
    chosen = sorted({r["groupings"]["flow_id"] for r in flows})[:2]
    ids = ",".join(f'"{flow_id}"' for flow_id in chosen)
    narrowed = report_attributes(
        dataset, "flow-values", filter=f'and(contains-any(flow_id,[{ids}]),equals(send_channel,"sms"))'
    )
    response = post_report(reporting_sim, "flow-values", narrowed)
    assert response.status_code == 200, response.text
    kept = response.json()["data"]["attributes"]["results"]
    assert kept and kept == [
        r for r in flows if r["groupings"]["flow_id"] in chosen and r["groupings"]["send_channel"] == "sms"
    ]
    forms, _ = report(dataset, "form-values", report_attributes(dataset, "form-values"))
    versions, _ = report(
        dataset, "form-values", report_attributes(dataset, "form-values", group_by=["form_id", "form_version_id"])
    )
    assert len(versions) > len(forms), "A/B-tested forms have two versions"
    assert all(version["groupings"]["form_version_id"] for version in versions)


def test_weekly_series_take_the_year_a_timeframe_may_span(reporting_sim):
    """The interval description limits hourly, daily and monthly series only; weekly ones are held to the
    timeframe's "Max length: 1 year" alone."""
    attributes = report_attributes(
        reporting_sim.dataset, "flow-series", interval="weekly", timeframe={"key": "last_365_days"}
    )
    response = post_report(reporting_sim, "flow-series", attributes)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["attributes"]["date_times"]) in (53, 54)


def _hundred_and_one_ids() -> str:
    return ",".join(f'"id{number}"' for number in range(101))


def _rule(kind: str, changes: dict[str, Any], words: str, says: str):
    """A request breaking one rule; the test's id is what the rule says (the spec's own sentence, where it has one)."""
    return pytest.param(kind, changes, words, id=says)


@pytest.mark.parametrize(
    "kind, changes, words",
    [
        _rule(
            "flow-series",
            {"interval": "hourly"},
            "cannot be longer than 7 days",
            "If hourly is used, the timeframe cannot be longer than 7 days.",
        ),
        _rule(
            "form-series",
            {"timeframe": {"key": "last_90_days"}},
            "cannot be longer than 60 days",
            "If daily is used, the timeframe cannot be longer than 60 days.",
        ),
        _rule(
            "segment-series",
            {"interval": "monthly", "timeframe": {"key": "last_365_days"}},
            "cannot be longer than 52 weeks",
            "If monthly is used, the timeframe cannot be longer than 52 weeks.",
        ),
        _rule(
            "segment-values",
            {"timeframe": {"start": "2023-05-01T00:00:00", "end": "2023-07-01T00:00:00"}},
            "June 1st",
            "Data is unavailable before June 1st, 2023.",
        ),
        _rule(
            "flow-values",
            {"filter": f"contains-any(flow_id,[{_hundred_and_one_ids()}])"},
            "at most 100 items",
            "Max of 100 items per list filter.",
        ),
        _rule(
            "campaign-values",
            {"filter": 'equals(send_channel,"push")'},
            "allowed values are email, sms, push-notification, whatsapp; not 'push'",
            "When filtering on send_channel, allowed values are email, sms, push-notification, whatsapp.",
        ),
        _rule(
            "campaign-values",
            {"conversion_metric_id": None},
            "conversion_metric_id",
            "conversion_metric_id is required",
        ),
        _rule(
            "flow-values",
            {"conversion_metric_id": "NoSuch"},
            "is not a metric of this account",
            "the conversion metric is one of the account's",
        ),
        _rule("campaign-values", {"statistics": []}, "at least one statistic", "statistics are asked for"),
        _rule("campaign-values", {"statistics": ["median"]}, "median", "statistics are the spec's"),
        _rule(
            "campaign-values",
            {"group_by": ["campaign_id", "send_channel"]},
            "must include campaign_message_id",
            "The following group by attributes are required: campaign_id, campaign_message_id",
        ),
        _rule(
            "form-values",
            {"group_by": ["form_version_id"]},
            "needs form_id",
            "If a group by has prerequisites, they must be passed in together.",
        ),
        _rule(
            "flow-values",
            {"filter": 'or(equals(flow_id,"a"),equals(flow_id,"b"))'},
            "Only AND",
            "Only AND can be used as a combination operator.",
        ),
        _rule(
            "flow-values",
            {"filter": 'equals(campaign_id,"a")'},
            "not a valid filter attribute",
            "Scalar attributes (flow_id, flow_name, send_channel, ...)",
        ),
        _rule(
            "segment-values",
            {"filter": 'contains-any(segment_id,["a"])'},
            "not a valid operator",
            "Allowed operators are equals, any.",
        ),
        _rule(
            "form-values",
            {"filter": 'and(equals(form_id,"a"),any(form_id,["b"]))'},
            "one filter can be used per attribute",
            "Only one filter can be used per attribute",
        ),
        _rule(
            "form-values",
            {"timeframe": {"start": "2025-01-01T00:00:00", "end": "2026-01-03T00:00:00"}},
            "at most 1 year",
            "The time frame to pull data from (Max length: 1 year).",
        ),
        _rule(
            "form-values",
            {"timeframe": {"start": "2025-01-02T00:00:00", "end": "2025-01-01T00:00:00"}},
            "after its start",
            "a timeframe ends after it starts",
        ),
        _rule("flow-series", {"interval": None}, "interval", "interval is required"),
    ],
)
def test_report_requests_outside_the_rules_get_400_naming_the_problem(reporting_sim, kind, changes, words):
    attributes = {
        name: value
        for name, value in report_attributes(reporting_sim.dataset, kind, **changes).items()
        if value is not None
    }
    response = post_report(reporting_sim, kind, attributes)
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert words in error["detail"], error
    assert post_report(reporting_sim, kind, attributes, type="campaign-series-report").status_code == 400


def test_the_daily_cap_answers_429_until_midnight_or_the_next_quota_day(reporting_sim):
    sim, dataset = reporting_sim, reporting_sim.dataset
    sim.limiter.clock = lambda: 1_800_000_000.5  # 2027-01-15T08:00:00.5Z
    assert requests.post(f"{sim.url}/__sim/daily-cap", params={"cap": 2}, timeout=10).json()["daily_cap"] == 2
    attributes = report_attributes(dataset, "flow-values")
    assert post_report(sim, "flow-values", {**attributes, "statistics": []}).status_code == 400, "not counted"
    assert post_report(sim, "flow-values", attributes, key=key_without("flows:read")).status_code == 403
    assert [post_report(sim, "flow-values", attributes).status_code for _ in range(2)] == [200, 200]
    capped = post_report(sim, "flow-values", attributes)
    assert capped.status_code == 429
    assert (
        capped.headers["Retry-After"] == str(DAY - 8 * 3600) and "Daily limit" in capped.json()["errors"][0]["detail"]
    )
    assert capped.headers["Date"] == "Fri, 15 Jan 2027 08:00:00 GMT", "Date + Retry-After is the next UTC midnight"
    assert not {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} & set(capped.headers), (
        "Klaviyo's guide: those headers are not returned when you actually hit a 429; Retry-After replaces them"
    )
    assert post_report(sim, "segment-values", report_attributes(dataset, "segment-values")).status_code == 200
    assert requests.post(f"{sim.url}/__sim/next-day", timeout=10).status_code == 200
    assert post_report(sim, "flow-values", attributes).status_code == 200
    sim.limiter.clock = lambda: 1_800_000_000.5 + DAY  # a new UTC day starts its own count
    assert [post_report(sim, "flow-values", attributes).status_code for _ in range(3)] == [200, 200, 429]
    sim.daily_cap = 225
    assert post_report(sim, "flow-values", attributes).status_code == 200


def test_the_other_client_spends_its_share_of_the_report_day_across_the_day(reporting_sim):
    sim = reporting_sim
    sim.daily_cap, sim.faults.competing_share = 10, 0.5  # 5 requests a day are the other client's
    sim.limiter.clock = lambda: 1_800_000_000.5  # 08:00 UTC: a third of the day, 2 of its 5 made
    attributes = report_attributes(sim.dataset, "flow-values")
    statuses = [post_report(sim, "flow-values", attributes).status_code for _ in range(9)]
    assert statuses == [200] * 8 + [429]
    assert sim.stats["competitor_429"] == 8 - 5, "its 3 requests later in the day find the day spent"


def test_paged_reports_follow_links_next_with_the_same_body():
    sizes = Sizes(flows=160, profiles=200, events=20_000, campaigns=6, segments=4, forms=4)
    simulator = Simulator(Dataset(seed=4, now=1_790_000_000, sizes=sizes), Faults(rate_limit_scale=0))
    with simulator.run_in_thread() as sim:
        attributes = report_attributes(sim.dataset, "flow-values", timeframe={"key": "last_90_days"})
        results, pages = read_report(sim, "flow-values", attributes)
        assert len(pages) >= 2 and len(pages[0]["data"]["attributes"]["results"]) == 100
        assert "page_cursor=" in pages[0]["links"]["next"] and pages[0]["links"]["self"].endswith(
            "/api/flow-values-reports"
        )
        assert results == report(sim.dataset, "flow-values", attributes)[0]
        assert len({tuple(r["groupings"].values()) for r in results}) == len(results)
        unpaged = f"{sim.url}/api/segment-values-reports?page_cursor=100"
        refused = post_report(sim, "segment-values", report_attributes(sim.dataset, "segment-values"), url=unpaged)
        assert refused.status_code == 400 and "page_cursor" in refused.json()["errors"][0]["detail"]


def test_series_bucket_events_by_local_day_and_custom_offsets_are_ignored():
    dataset = Dataset(seed=5, now=1_790_000_000, sizes=Sizes(events=3_000, profiles=100, flows=6))
    zone = ZoneInfo(dataset.sizes.timezone)
    events = dataset.events

    def local(index: int) -> datetime:
        return datetime.fromtimestamp(events.time(index), zone)

    late = next(
        i for i in range(events.count) if (events.attribution(i) or {}).get("flow-message") and local(i).hour == 23
    )
    message = events.attribution(late)["flow-message"]
    day = local(late).date()
    assert datetime.fromtimestamp(events.time(late), timezone.utc).date() > day, "the next day in UTC"
    metric = events.metric_ids[events.metric_of[late]]
    attributes = {
        "statistics": ["conversions"],
        "timeframe": {"start": f"{day}T00:00:00+00:00", "end": f"{day + timedelta(days=2)}T00:00:00+09:00"},
        "interval": "daily",
        "conversion_metric_id": metric,
        "filter": f'equals(flow_message_id,"{message}")',
    }
    (row,), date_times = report(dataset, "flow-series", attributes)
    assert date_times[0] == datetime(day.year, day.month, day.day, tzinfo=zone).isoformat()
    same_day = [
        i
        for i in range(events.count)
        if events.metric_of[i] == events.metric_of[late]
        and (events.attribution(i) or {}).get("flow-message") == message
        and local(i).date() == day
    ]
    assert late in same_day and row["statistics"]["conversions"][0] == len(same_day)
    plain = {**attributes, "timeframe": {"start": f"{day}T00:00:00", "end": f"{day + timedelta(days=2)}T00:00:00"}}
    assert report(dataset, "flow-series", plain) == ([row], date_times), "offsets are ignored"


def test_late_events_show_up_in_reports_after_reveal():
    dataset = Dataset(seed=6, now=1_790_000_000, sizes=Sizes(events=3_000, profiles=100))
    attributes = report_attributes(dataset, "flow-values", timeframe={"key": "last_7_days"})
    complete, _ = report(dataset, "flow-values", attributes)
    dataset.delay_events(every=2, within_seconds=10 * DAY)
    partial, _ = report(dataset, "flow-values", attributes)
    dataset.reveal()
    assert partial != complete and report(dataset, "flow-values", attributes)[0] == complete


@pytest.mark.parametrize("events", [2_000, 25_000])  # rendered in this process; in two forked ones
def test_prerendered_events_are_the_same_bytes_as_rendered_ones(events, monkeypatch):
    sizes = Sizes(campaigns=30, flows=9, profiles=300, events=events, event_days=45)
    simulator = Simulator(Dataset(seed=3, now=1_790_000_000, sizes=sizes), Faults(rate_limit_scale=0))
    middle = iso(simulator.dataset.events.time(events // 2))
    metric = simulator.dataset.events.metric_ids[1]
    queries = [  # the connector's form, in time order and newest first, a window, a metric, other forms
        {"include": "metric,attributions", "page[size]": 1000, "sort": "datetime"},
        {"include": "metric,attributions", "page[size]": 370, "sort": "-datetime"},
        {"include": "metric,attributions", "page[size]": 1000, "filter": f"greater-than(datetime,{middle})"},
        {"include": "metric,attributions", "page[size]": 200, "filter": f"equals(metric_id,'{metric}')"},
        {"include": "attributions,metric", "page[size]": 100},
        {"include": "metric", "page[size]": 100},
    ]
    with simulator.run_in_thread() as running:

        def answers() -> list[bytes]:
            pages = []
            for params in queries:
                response = get(running, "events", params)
                pages.append(response.content)
                while next_link := response.json()["links"].get("next"):
                    response = get(running, "events", url=next_link)
                    pages.append(response.content)
            return pages

        rendered = answers()
        running.prerender_events()
        generated = Counter()
        record = Events.record
        monkeypatch.setattr(Events, "record", lambda self, index: generated.update([index]) or record(self, index))
        assert answers() == rendered
    assert len(rendered) > 20
    # Only the two queries not in the connector's form rendered events again: each every event once.
    assert generated == Counter({index: 2 for index in range(events)})
