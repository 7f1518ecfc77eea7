"""metric_aggregates: the query checked up front, tidy rows, year-long windows stitched, page cursors followed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.aggregate_query import DIMENSIONS
from source_klaviyo.config import parse_config
from unit_tests.klaviyo_mock import NOW, config, error_body, run_read, url

START, END = "2024-01-01T00:00:00", "2025-07-01T00:00:00"


def query(**attributes):
    base = {
        "metric_id": "PLACED",
        "measurements": ["sum_value", "count"],
        "by": ["$attributed_flow"],
        "interval": "month",
        "filter": [f"greater-or-equal(datetime,{START})", f"less-than(datetime,{END})"],
        "timezone": "UTC",
    }
    return {"data": {"type": "metric-aggregate", "attributes": {**base, **attributes}}}


def months(start: datetime, end: datetime) -> list[str]:
    dates, moment = [], start.replace(day=1)
    while moment < end:
        dates.append(moment.isoformat())
        moment = (moment + timedelta(days=32)).replace(day=1)
    return dates


def serve_aggregates(api, page_size=None):
    """Monthly buckets of the requested range: flow A's sum is the month number, flow B's count 2; two rows a page."""

    def respond(request, context):
        attributes = request.json()["data"]["attributes"]
        bounds = {term.split("(")[0]: term.split(",", 1)[1].rstrip(")") for term in attributes["filter"]}
        start, end = datetime.fromisoformat(bounds["greater-or-equal"]), datetime.fromisoformat(bounds["less-than"])
        assert end - start <= timedelta(days=366), "Klaviyo's one-year maximum"
        dates = months(start, end)
        rows = [
            {
                "dimensions": ["FLOW_A"],
                "measurements": {"sum_value": [float(d[5:7]) for d in dates], "count": [1.0] * len(dates)},
            },
            {"dimensions": ["FLOW_B"], "measurements": {"sum_value": [0.0] * len(dates), "count": [2.0] * len(dates)}},
        ]
        cursor = int(attributes.get("page_cursor") or 0)
        links = {"self": url("metric-aggregates")}
        if page_size and cursor + page_size < len(rows):
            links["next"] = f"{url('metric-aggregates')}?page_cursor={cursor + page_size}"
        rows = rows[cursor : cursor + page_size] if page_size else rows
        return {
            "data": {
                "type": "metric-aggregate",
                "id": "q",
                "attributes": {"dates": dates, "data": rows},
                "links": links,
            }
        }

    api.post(url("metric-aggregates"), json=respond)


def read_aggregates(api, settings):
    return run_read(settings, {"metric_aggregates": SyncMode.full_refresh})


def test_rows_are_tidy_one_per_date_and_dimensions_with_a_stable_id(api):
    serve_aggregates(api)
    first = [r.record.data for r in read_aggregates(api, config(metric_aggregates=query())).records]
    again = [r.record.data for r in read_aggregates(api, config(metric_aggregates=json.dumps(query()))).records]

    assert first == again, "the same query gives the same rows and ids, as an object or as JSON text"
    assert len(first) == 18 * 2, "18 months, 2 flows"
    assert len({row["id"] for row in first}) == len(first)
    june = next(
        r
        for r in first
        if r["date"] == "2024-06-01T00:00:00+00:00" and r["dimensions"] == {"$attributed_flow": "FLOW_A"}
    )
    assert june == {
        "id": june["id"],
        "query_name": "default",
        "metric_id": "PLACED",
        "interval": "month",
        "timezone": "UTC",
        "date": "2024-06-01T00:00:00+00:00",
        "dimensions": {"$attributed_flow": "FLOW_A"},
        "sum_value": 6.0,
        "count": 1.0,
    }


def test_a_range_over_a_year_is_read_in_windows_that_meet_at_an_interval_start(api):
    serve_aggregates(api)
    rows = [r.record.data for r in read_aggregates(api, config(metric_aggregates=query())).records]

    windows = [
        request.json()["data"]["attributes"]["filter"][:2]
        for request in api.request_history
        if request.method == "POST"
    ]
    assert windows[-2:] == [
        ["greater-or-equal(datetime,2024-01-01T00:00:00+00:00)", "less-than(datetime,2024-12-31T00:00:00+00:00)"],
        ["greater-or-equal(datetime,2024-12-01T00:00:00+00:00)", "less-than(datetime,2025-07-01T00:00:00+00:00)"],
    ]
    dates = sorted({row["date"] for row in rows})
    assert dates == months(datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2025, 7, 1, tzinfo=timezone.utc))
    december = [r for r in rows if r["date"].startswith("2024-12")]
    assert len(december) == 2, "December, cut by the first window, is read once, whole, from the second"


def test_page_cursors_are_followed(api):
    serve_aggregates(api, page_size=1)
    rows = [r.record.data for r in read_aggregates(api, config(metric_aggregates=query())).records]
    cursors = [
        request.json()["data"]["attributes"].get("page_cursor")
        for request in api.request_history
        if request.method == "POST"
    ]
    assert cursors[-4:] == [None, "1", None, "1"]
    assert {row["dimensions"]["$attributed_flow"] for row in rows} == {"FLOW_A", "FLOW_B"}


def test_named_queries_each_give_their_rows(api):
    serve_aggregates(api)
    queries = [{"name": "revenue_by_flow", **query()}, {"name": "orders", **query(measurements=["count"], by=[])}]
    rows = [r.record.data for r in read_aggregates(api, config(metric_aggregates=queries)).records]
    assert {row["query_name"] for row in rows} == {"revenue_by_flow", "orders"}
    assert all("sum_value" not in row for row in rows if row["query_name"] == "orders")


def test_a_query_klaviyo_rejects_is_a_config_error_quoting_klaviyo(api):
    api.post(
        url("metric-aggregates"), status_code=400, json=error_body(400, "Metric does not support dimension.", "by")
    )
    output = run_read(
        config(metric_aggregates=query()), {"metric_aggregates": SyncMode.full_refresh}, expect_failure=True
    )
    (error,) = output.errors
    assert error.trace.error.failure_type == FailureType.config_error
    assert "Metric does not support dimension. (parameter: by)" in error.trace.error.message


def test_selecting_metric_aggregates_without_a_query_is_a_config_error(api):
    output = run_read(config(), {"metric_aggregates": SyncMode.full_refresh}, expect_failure=True)
    (error,) = output.errors
    message = error.trace.error.message
    assert "metric_aggregates stream, which needs `metric_aggregates` (a query)" in message and api.call_count == 0


@pytest.mark.parametrize(
    "value, words",
    [
        ('{"data": ', "is not valid JSON"),
        (42, "must be Klaviyo's metric-aggregates body"),
        ({"data": {"type": "metric", "attributes": {}}}, '"type": "metric-aggregate"'),
        (query(metric_id=""), "metric_id"),
        (query(measurements=[]), "must list measurements"),
        (query(measurements=["median"]), "unknown measurements ['median']; allowed: count, sum_value, unique"),
        (query(by=["Color"]), "unknown `by` dimensions (revision 2026-07-15) ['Color']; allowed: $attributed_channel"),
        (query(filter=[f"less-than(datetime,{END})"]), "a datetime range in filter"),
        (
            query(filter=[f"greater-or-equal(datetime,{END})", f"less-than(datetime,{START})"]),
            "end the datetime range after",
        ),
        (query(filter=["greater-or-equal(datetime,soon)", f"less-than(datetime,{END})"]), "ISO-8601"),
        (query(filter=[f"greater-or-equal(datetime,{START})", "less-than(datetime,9999-12-31T23:59:59)"]), "2100"),
        (query(interval="year"), "unknown interval ['year']"),
        (query(timezone="Mars/Olympus"), "IANA timezone"),
        (query(page_cursor="x"), "not supported"),
        ([{"name": "a", **query()}, {"name": "a", **query()}], "own name"),
    ],
)
def test_a_bad_query_is_a_config_error_that_says_what_is_wrong(value, words):
    with pytest.raises(AirbyteTracedException) as caught:
        parse_config(config(metric_aggregates=value), NOW)
    assert caught.value.failure_type == FailureType.config_error
    assert "`metric_aggregates`" in caught.value.message and words in caught.value.message, caught.value.message


@pytest.mark.parametrize("revision", ["2026-07-15", "2023-10-15"])
def test_the_allowed_dimensions_are_the_specs(revision):
    from integration_tests.klaviyo_sim.contract import load_spec

    path = "/api/metric-aggregates" + ("/" if revision == "2023-10-15" else "")
    operation = load_spec(revision)["paths"][path]["post"]
    schema_name = next(iter(operation["requestBody"]["content"].values()))["schema"]["$ref"].rsplit("/", 1)[1]
    assert sorted(DIMENSIONS[revision]) == sorted(_by_enum(load_spec(revision), schema_name))


def _by_enum(document, schema_name):
    """The `by` items enum of the metric-aggregate query attributes."""
    schemas = document["components"]["schemas"]

    def resolve(node):
        while "$ref" in node:
            node = schemas[node["$ref"].rsplit("/", 1)[1]]
        return node

    data = resolve(resolve(schemas[schema_name])["properties"]["data"])
    attributes = resolve(data["properties"]["attributes"])
    return resolve(attributes["properties"]["by"])["items"]["enum"]
