"""metric_aggregates: the query checked up front, tidy rows, year-long windows stitched, page cursors followed,
relative ranges resolved on the injected clock, incremental re-reads of the last intervals."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.test.state_builder import StateBuilder
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from klaviyo_spec.aggregate_rules import supported_timezones
from source_klaviyo.aggregate_query import DIMENSIONS, UNSUPPORTED_TIMEZONES
from source_klaviyo.config import parse_config
from unit_tests.klaviyo_mock import NOW, config, error_body, run_read, stream_state, url

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


SEED_FLOW_FILTER = 'not(equals($attributed_flow,""))'


def rolling(**extra):
    """A query over a relative range: no datetime terms in `filter`, the seed's extra term kept."""
    return {**extra, **query(interval="day", timezone="America/New_York", filter=[SEED_FLOW_FILTER])}


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
        (query(timezone="Europe/Kyiv"), "it refuses Factory, Europe/Kyiv, Pacific/Kanton"),
        (query(page_cursor="x"), "not supported"),
        ([{"name": "a", **query()}, {"name": "a", **query()}], "own name"),
        (rolling(timeframe="last_2_days"), "unknown timeframe ['last_2_days']; allowed: today, yesterday"),
        (rolling(days_back=0), "days_back as a whole number of days from 1 to 1825"),
        (rolling(days_back=1826), "from 1 to 1825"),
        (rolling(days_back=True), "from 1 to 1825"),
        (rolling(days_back=3, timeframe="today"), "either timeframe or days_back"),
        ({"timeframe": "today", **query()}, "leave datetime terms out of filter"),
        (rolling(timeframe="today", reread_intervals=0), "reread_intervals as a whole number from 1 to 366"),
        (query(filter=[SEED_FLOW_FILTER]), '"timeframe" (e.g. "last_30_days") or "days_back"'),
    ],
)
def test_a_bad_query_is_a_config_error_that_says_what_is_wrong(value, words):
    with pytest.raises(AirbyteTracedException) as caught:
        parse_config(config(metric_aggregates=value), NOW)
    assert caught.value.failure_type == FailureType.config_error
    assert "`metric_aggregates`" in caught.value.message and words in caught.value.message, caught.value.message


@pytest.mark.parametrize("revision", ["2026-07-15", "2023-10-15"])
def test_the_allowed_dimensions_are_the_specs(revision):
    from klaviyo_spec.contract import load_spec

    path = "/api/metric-aggregates" + ("/" if revision == "2023-10-15" else "")
    operation = load_spec(revision)["paths"][path]["post"]
    schema_name = next(iter(operation["requestBody"]["content"].values()))["schema"]["$ref"].rsplit("/", 1)[1]
    assert sorted(DIMENSIONS[revision]) == sorted(_by_enum(load_spec(revision), schema_name))


@pytest.mark.parametrize("revision", ["2026-07-15", "2023-10-15"])
def test_the_refused_timezones_are_the_specs_exceptions(revision):
    assert not set(UNSUPPORTED_TIMEZONES) & supported_timezones(revision)
    assert all(ZoneInfo(name) for name in UNSUPPORTED_TIMEZONES), "IANA names the connector would otherwise pass"


def test_a_range_reaching_back_over_five_years_is_read_from_the_first_whole_interval_within_them(api):
    """Klaviyo: "Time range dates may be set to a maximum of 5 years prior to the current date". A days_back
    range widened to whole months begins on the 1st, before that day; the read starts a month later, with a warning."""
    serve_aggregates(api)
    output = read_aggregates(api, config(metric_aggregates={"days_back": 1825, **query(filter=[])}))

    starts = [request.json()["data"]["attributes"]["filter"][0] for request in api.request_history]
    assert starts[0] == starts[1] == "greater-or-equal(datetime,2021-12-01T00:00:00+00:00)", "the probe and the read"
    assert "reaches back more than 5 years" in " ".join(log.log.message for log in output.logs)
    assert min(row["date"] for row in (r.record.data for r in output.records)) == "2021-12-01T00:00:00+00:00"


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


def serve_days(api):
    """Daily buckets of the requested range in the query's timezone; flow A counts the day of the month."""

    def respond(request, context):
        attributes = request.json()["data"]["attributes"]
        bounds = {term.split("(")[0]: term.split(",", 1)[1].rstrip(")") for term in attributes["filter"][:2]}
        zone = ZoneInfo(attributes["timezone"])
        day, end = datetime.fromisoformat(bounds["greater-or-equal"]), datetime.fromisoformat(bounds["less-than"])
        dates = []
        while day < end:
            dates.append(day.isoformat())
            day = datetime.combine(day.date() + timedelta(days=1), day.time(), tzinfo=zone)
        values = {"sum_value": [0.0] * len(dates), "count": [float(d[8:10]) for d in dates]}
        return {
            "data": {
                "type": "metric-aggregate",
                "id": "q",
                "attributes": {"dates": dates, "data": [{"dimensions": ["FLOW_A"], "measurements": values}]},
            }
        }

    api.post(url("metric-aggregates"), json=respond)


def read_windows(api):
    """The [greater-or-equal, less-than] terms of each data request (the probe, first, left out)."""
    bodies = [request.json()["data"]["attributes"] for request in api.request_history if request.method == "POST"]
    return [[term.split(",", 1)[1].rstrip(")") for term in body["filter"][:2]] for body in bodies[1:]]


@pytest.mark.parametrize(
    "relative, interval, zone, start, end",
    [
        # NOW is 2026-11-28 01:00 in Auckland, 2026-11-27 07:00 in New York.
        (
            {"timeframe": "last_7_days"},
            "day",
            "Pacific/Auckland",
            "2026-11-21T00:00:00+13:00",
            "2026-11-28T00:00:00+13:00",
        ),
        (
            {"timeframe": "yesterday"},
            "day",
            "America/Los_Angeles",
            "2026-11-26T00:00:00-08:00",
            "2026-11-27T00:00:00-08:00",
        ),
        (
            {"timeframe": "last_month"},
            "month",
            "Pacific/Auckland",
            "2026-10-01T00:00:00+13:00",
            "2026-11-01T00:00:00+13:00",
        ),
        # this_* and days_back end with the interval holding now; a range is widened to whole weeks.
        (
            {"timeframe": "this_month"},
            "week",
            "Pacific/Auckland",
            "2026-10-26T00:00:00+13:00",
            "2026-11-30T00:00:00+13:00",
        ),
        (
            {"timeframe": "this_year"},
            "month",
            "America/New_York",
            "2026-01-01T00:00:00-05:00",
            "2026-12-01T00:00:00-05:00",
        ),
        ({"days_back": 3}, "hour", "America/New_York", "2026-11-24T00:00:00-05:00", "2026-11-27T08:00:00-05:00"),
    ],
)
def test_a_relative_range_is_resolved_on_the_clock_in_the_query_timezone(relative, interval, zone, start, end):
    body = {**relative, **query(interval=interval, timezone=zone, filter=[SEED_FLOW_FILTER])}
    (parsed,) = parse_config(config(metric_aggregates=body), NOW).metric_aggregates
    assert (parsed.start.isoformat(), parsed.end.isoformat()) == (start, end)
    assert parsed.other_filters == (SEED_FLOW_FILTER,)


def test_the_seed_filter_is_sent_as_given_next_to_the_datetime_range(api):
    serve_days(api)
    filters = [f"greater-or-equal(datetime,{START})", "less-than(datetime,2024-01-03T00:00:00)", SEED_FLOW_FILTER]
    seed = query(measurements=["sum_value", "count"], interval="day", filter=filters)
    read_aggregates(api, config(metric_aggregates=seed))

    sent = [request.json()["data"]["attributes"]["filter"] for request in api.request_history]
    assert sent[-1] == [
        "greater-or-equal(datetime,2024-01-01T00:00:00+00:00)",
        "less-than(datetime,2024-01-03T00:00:00+00:00)",
        SEED_FLOW_FILTER,
    ]


def test_an_incremental_sync_rereads_the_last_intervals_and_keeps_the_ids(api):
    settings = config(metric_aggregates=rolling(days_back=10, reread_intervals=2))
    serve_days(api)
    first = run_read(settings, {"metric_aggregates": SyncMode.incremental})
    assert read_windows(api) == [["2026-11-17T00:00:00-05:00", "2026-11-28T00:00:00-05:00"]], "no state: all of it"
    state = stream_state(first, "metric_aggregates")
    assert state == {"states": [{"partition": {"query_name": "default"}, "cursor": {"date": "2026-11-27T05:00:00Z"}}]}

    api.reset_mock()
    serve_days(api)
    day_later = NOW + timedelta(days=1)
    second = run_read(
        settings,
        {"metric_aggregates": SyncMode.incremental},
        StateBuilder().with_stream_state("metric_aggregates", state).build(),
        now=day_later,
    )
    assert read_windows(api) == [["2026-11-26T00:00:00-05:00", "2026-11-29T00:00:00-05:00"]], (
        "the last two days read before, and the new one"
    )
    ids = {row["date"]: row["id"] for row in (r.record.data for r in first.records)}
    again = {row["date"]: row["id"] for row in (r.record.data for r in second.records)}
    assert sorted(again) == ["2026-11-26T00:00:00-05:00", "2026-11-27T00:00:00-05:00", "2026-11-28T00:00:00-05:00"]
    assert all(again[date] == ids[date] for date in sorted(again)[:2]), "a relative range keeps its ids"
    assert stream_state(second, "metric_aggregates")["states"][0]["cursor"] == {"date": "2026-11-28T05:00:00Z"}

    api.reset_mock()
    serve_days(api)
    run_read(
        settings,
        {"metric_aggregates": SyncMode.full_refresh},
        StateBuilder().with_stream_state("metric_aggregates", state).build(),
        now=day_later,
    )
    assert read_windows(api) == [["2026-11-18T00:00:00-05:00", "2026-11-29T00:00:00-05:00"]], "full refresh: all"


def test_a_state_never_takes_a_sync_before_the_query_range(api):
    """A state from before a relative range moved on: the range's start bounds the re-read."""
    serve_days(api)
    old = {"states": [{"partition": {"query_name": "default"}, "cursor": {"date": "2026-10-01T04:00:00Z"}}]}
    run_read(
        config(metric_aggregates=rolling(timeframe="last_7_days")),
        {"metric_aggregates": SyncMode.incremental},
        StateBuilder().with_stream_state("metric_aggregates", old).build(),
    )
    assert read_windows(api) == [["2026-11-20T00:00:00-05:00", "2026-11-27T00:00:00-05:00"]]
