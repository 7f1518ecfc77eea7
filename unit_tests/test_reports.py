"""Reporting API streams: rows, dates in the account's timezone, stable ids, the re-read window and the daily quota."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.state_builder import StateBuilder

from klaviyo_spec.contract import load_spec
from klaviyo_spec.report_rules import rules
from source_klaviyo.clock import format_klaviyo_datetime
from source_klaviyo.report_dates import Period
from source_klaviyo.streams.context import ReadChoices, ReportContext, StreamContext
from source_klaviyo.streams.reports import REPORT_CLASSES
from unit_tests.klaviyo_mock import METRIC, NOW, all_output, config, run_read, stream_state, url

ZONE = ZoneInfo("America/New_York")
RECEIVED = {"type": "metric", "id": "REC1", "attributes": {"name": "Received Email"}}
FLOW = {"flow_id": "F1", "flow_message_id": "FM1", "send_channel": "email"}


def serve_account(api, metrics=(METRIC, RECEIVED)):
    account = {"type": "account", "id": "A1", "attributes": {"timezone": ZONE.key}}
    api.get(url("accounts"), json={"data": [account], "links": {}})
    api.get(url("metrics"), json={"data": list(metrics), "links": {}})
    for collection in ("campaigns", "flows", "forms", "segments"):  # the probes of the reports' scopes
        api.get(url(collection), json={"data": [], "links": {}})


def series_answer(request, context):
    """One flow message's opens on each day of the asked timeframe (Klaviyo reads it as local wall-clock time)."""
    timeframe = request.json()["data"]["attributes"]["timeframe"]
    day, end = datetime.fromisoformat(timeframe["start"]), datetime.fromisoformat(timeframe["end"])
    days = []
    while day < end:
        days.append(day.isoformat())
        day = datetime.combine(day.date() + timedelta(days=1), day.time(), tzinfo=ZONE)
    opens = [index + 1 for index in range(len(days))]
    statistics = {"opens": opens, "open_rate": [0.25] * len(days)}
    return {
        "data": {
            "type": "flow-series-report",
            "attributes": {"results": [{"groupings": FLOW, "statistics": statistics}], "date_times": days},
        },
        "links": {"self": request.url},
    }


def bodies(api, endpoint):
    return [call.json()["data"]["attributes"] for call in api.request_history if call.path == f"/api/{endpoint}"]


@pytest.mark.parametrize("stream_class", REPORT_CLASSES, ids=lambda cls: cls.name)
def test_every_statistic_of_the_revision_is_a_numeric_column(stream_class):
    path = f"/api/{stream_class.endpoint_name}"
    request = load_spec("2026-07-15")["paths"][path]["post"]["requestBody"]["content"]["application/vnd.api+json"]
    schema_name = request["schema"]["$ref"].split("/")[-1]
    components = load_spec("2026-07-15")["components"]["schemas"]
    resource = components[components[schema_name]["properties"]["data"]["$ref"].split("/")[-1]]
    offered = resource["properties"]["attributes"]["properties"]["statistics"]["items"]["enum"]
    assert set(stream_class.statistics) == set(offered)
    schema = stream_class(StreamContext(config_model(), None, NOW)).get_json_schema()
    assert all(schema["properties"][name]["type"] == ["null", "number"] for name in offered)


def config_model(**overrides):
    from source_klaviyo.config import parse_config

    return parse_config(config(**overrides), NOW)


def request_and_response_schemas(stream_class) -> tuple[dict, dict]:
    """The attributes of the report's request body and the example of its response's results, from the spec."""
    path = load_spec("2026-07-15")["paths"][f"/api/{stream_class.endpoint_name}"]["post"]
    components = load_spec("2026-07-15")["components"]["schemas"]

    def named(reference: str) -> dict:
        return components[reference.rsplit("/", 1)[1]]

    request = named(
        named(path["requestBody"]["content"]["application/vnd.api+json"]["schema"]["$ref"])["properties"]["data"][
            "$ref"
        ]
    )
    response = named(path["responses"]["200"]["content"]["application/vnd.api+json"]["schema"]["$ref"])
    return request["properties"]["attributes"]["properties"], response["properties"]["data"]["properties"]["attributes"]


@pytest.mark.parametrize("by_variation", [False, True], ids=["default", "by_variation"])
@pytest.mark.parametrize("stream_class", REPORT_CLASSES, ids=lambda cls: cls.name)
def test_each_report_asks_klaviyo_for_every_column_it_declares(stream_class, by_variation):
    """Klaviyo fills only the groupings a request asks for (of forms the spec says "If not passed in, the data will
    be grouped by form_id"), so a report whose request takes `group_by` sends its columns as one, within the spec's
    allowed, required and prerequisite group-bys; one whose request takes none (segments) declares the groupings the
    spec's response example shows."""
    choices = ReadChoices(reports=ReportContext(ZONE, METRIC["id"]))
    stream = stream_class(
        StreamContext(config_model(campaign_reports_by_variation=by_variation), None, NOW, None, choices)
    )
    attributes = stream.body(Period(datetime(2026, 1, 1, tzinfo=ZONE), datetime(2026, 2, 1, tzinfo=ZONE)))
    attributes = attributes["data"]["attributes"]
    request, response = request_and_response_schemas(stream_class)
    allowed = rules(stream_class.endpoint_name.removesuffix("-reports"))
    if "group_by" in request:
        group_by = attributes["group_by"]
        assert group_by == list(stream.columns())
        assert set(group_by) <= set(allowed.group_by) and set(allowed.required_group_by) <= set(group_by)
        assert all(needed in group_by for name, needed in allowed.prerequisites.items() if name in group_by)
    else:
        assert "group_by" not in attributes
        examples = response["properties"]["results"]["example"]
        assert all(set(example["groupings"]) == set(stream.columns()) for example in examples)


def test_a_series_report_reads_local_days_in_chunks_of_60_with_every_statistic_and_the_placed_order_metric(api):
    serve_account(api)
    api.post(url("flow-series-reports"), json=series_answer)
    output = run_read(
        config(backfill_window_days={"flow_series_reports": 100}), {"flow_series_reports": SyncMode.incremental}
    )

    asked = bodies(api, "flow-series-reports")
    assert len(asked) == 2
    first, second = (attributes["timeframe"] for attributes in asked)
    local_now = NOW.astimezone(ZONE)
    assert (
        first["start"]
        == datetime.combine((local_now - timedelta(days=100)).date(), datetime.min.time(), tzinfo=ZONE).isoformat()
    )
    assert first["end"] == second["start"] and second["end"] == local_now.isoformat()
    assert (datetime.fromisoformat(first["end"]) - datetime.fromisoformat(first["start"])).days == 60
    assert all(body["interval"] == "daily" and body["conversion_metric_id"] == METRIC["id"] for body in asked)
    assert len(asked[0]["statistics"]) == 31
    rows = [message.record.data for message in output.records]
    assert len(rows) == 101 and len({row["id"] for row in rows}) == 101
    assert all(row["date"].endswith(("-05:00", "-04:00")) and row["timezone"] == ZONE.key for row in rows)
    assert rows[0]["opens"] == 1 and rows[0]["open_rate"] == 0.25 and rows[0].get("clicks") is None
    assert {key: rows[0][key] for key in FLOW} == FLOW
    assert stream_state(output, "flow_series_reports")["date"] == local_now.isoformat()


def test_the_next_sync_reads_the_lookback_again_and_the_rows_keep_their_ids(api):
    serve_account(api)
    api.post(url("flow-series-reports"), json=series_answer)
    cfg = config(backfill_window_days={"flow_series_reports": 20}, reporting_lookback_days=7)
    first = run_read(cfg, {"flow_series_reports": SyncMode.incremental})
    state = stream_state(first, "flow_series_reports")
    later = NOW + timedelta(days=3)
    message = StateBuilder().with_stream_state("flow_series_reports", state).build()
    second = run_read(cfg, {"flow_series_reports": SyncMode.incremental}, state=message, now=later)

    start = bodies(api, "flow-series-reports")[-1]["timeframe"]["start"]
    assert (
        start
        == datetime.combine(
            (NOW.astimezone(ZONE) - timedelta(days=7)).date(), datetime.min.time(), tzinfo=ZONE
        ).isoformat()
    )
    ids_before = {row.record.data["date"]: row.record.data["id"] for row in first.records}
    ids_after = {row.record.data["date"]: row.record.data["id"] for row in second.records}
    assert set(ids_after) - set(ids_before), "the days since the last sync are read"
    assert all(ids_after[date] == ids_before[date] for date in set(ids_after) & set(ids_before))


def test_values_reports_are_read_per_calendar_year_from_the_first_of_january(api):
    serve_account(api)
    results = [
        {
            "groupings": {"campaign_id": "C1", "campaign_message_id": "CM1", "send_channel": "sms"},
            "statistics": {"recipients": 10, "click_rate": 0.1},
        }
    ]
    api.post(
        url("campaign-values-reports"),
        json={"data": {"type": "campaign-values-report", "attributes": {"results": results}}, "links": {}},
    )
    output = run_read(config(), {"campaign_values_reports": SyncMode.incremental})

    years = [attributes["timeframe"] for attributes in bodies(api, "campaign-values-reports")]
    local_now = NOW.astimezone(ZONE)
    assert years == [
        {
            "start": datetime(local_now.year - 1, 1, 1, tzinfo=ZONE).isoformat(),
            "end": datetime(local_now.year, 1, 1, tzinfo=ZONE).isoformat(),
        },
        {"start": datetime(local_now.year, 1, 1, tzinfo=ZONE).isoformat(), "end": local_now.isoformat()},
    ]
    rows = [message.record.data for message in output.records]
    assert [row["start"] for row in rows] == [year["start"] for year in years]
    assert rows[0]["recipients"] == 10 and rows[0]["conversion_metric_id"] == METRIC["id"]


def test_segment_reports_never_ask_before_june_2023(api):
    serve_account(api)
    api.post(
        url("segment-values-reports"),
        json={"data": {"type": "segment-values-report", "attributes": {"results": []}}, "links": {}},
    )
    early = datetime(2024, 3, 1, tzinfo=ZONE)  # a clock early enough that all history is two requests
    run_read(
        config(backfill_window_days={"segment_values_reports": 0}, start_date="2023-01-01T00:00:00Z"),
        {"segment_values_reports": SyncMode.full_refresh},
        now=early,
    )
    starts = [body["timeframe"]["start"] for body in bodies(api, "segment-values-reports")]
    assert starts == [datetime(2023, 6, 1, tzinfo=ZONE).isoformat(), datetime(2024, 1, 1, tzinfo=ZONE).isoformat()]


def test_a_spent_day_ends_the_stream_successfully_with_its_finished_periods_and_a_warning(api):
    serve_account(api)
    api.post(url("flow-series-reports"), json=series_answer)
    today = NOW.date().isoformat()
    state = {"date": (NOW - timedelta(days=150)).astimezone(ZONE).isoformat(), "quota": {"day": today, "spent": 224}}
    message = StateBuilder().with_stream_state("flow_series_reports", state).build()
    output = run_read(config(reporting_lookback_days=0), {"flow_series_reports": SyncMode.incremental}, state=message)

    assert len(bodies(api, "flow-series-reports")) == 1
    final = stream_state(output, "flow_series_reports")
    assert final["quota"] == {"day": today, "spent": 225}
    assert final["unfinished_sync_end"] == final["date"] == bodies(api, "flow-series-reports")[0]["timeframe"]["end"]
    warning = quota_warning(output)
    assert "the day's quota of 225 requests to /api/flow-series-reports" in warning and "are left" in warning
    assert "rate_limit_share" not in warning, "Klaviyo's whole quota needs no explaining"
    assert f"resets at {format_klaviyo_datetime(datetime(2026, 11, 28, tzinfo=timezone.utc))}" in warning


def test_at_half_the_rate_limits_a_day_s_quota_is_112_requests_and_the_warning_says_why(api):
    serve_account(api)
    api.post(url("flow-series-reports"), json=series_answer)
    today = NOW.date().isoformat()
    state = {"date": (NOW - timedelta(days=150)).astimezone(ZONE).isoformat(), "quota": {"day": today, "spent": 111}}
    message = StateBuilder().with_stream_state("flow_series_reports", state).build()
    output = run_read(
        config(reporting_lookback_days=0, rate_limit_share=0.5),
        {"flow_series_reports": SyncMode.incremental},
        state=message,
    )

    assert len(bodies(api, "flow-series-reports")) == 1
    assert stream_state(output, "flow_series_reports")["quota"] == {"day": today, "spent": 112}
    warning = quota_warning(output)
    assert (
        "the day's quota of 112 requests to /api/flow-series-reports (`rate_limit_share` 0.5 of Klaviyo's 225: "
        "the rest is left to the account's other apps)" in warning
    )


def quota_warning(output) -> str:
    (warning,) = [log.log.message for log in output.logs if "are left" in log.log.message]
    return warning


def daily_429(api, detail: str, **headers: str):
    """A flow series report that answers one period, then Klaviyo's daily 429 with `headers`."""
    limit = {"errors": [{"status": 429, "code": "throttled", "title": "Daily limit", "detail": detail}]}
    api.post(
        url("flow-series-reports"), [{"json": series_answer}, {"status_code": 429, "json": limit, "headers": headers}]
    )


def test_klaviyo_s_daily_429_ends_the_stream_successfully_and_the_next_sync_goes_on_from_there(api):
    serve_account(api)
    answered = NOW + timedelta(hours=3)  # the 429's own time, hours after the sync's start
    daily_429(api, "daily limit reached", **{"Retry-After": "40000", "Date": format_datetime(answered, usegmt=True)})
    output = run_read(
        config(backfill_window_days={"flow_series_reports": 100}), {"flow_series_reports": SyncMode.incremental}
    )

    asked = bodies(api, "flow-series-reports")
    final = stream_state(output, "flow_series_reports")
    assert len(asked) == 2 and final["unfinished_sync_end"] == asked[1]["timeframe"]["start"]
    assert len(output.records) == 60
    warning = quota_warning(output)
    assert 'Klaviyo\'s daily limit, HTTP 429: "daily limit reached"' in warning and "225" not in warning
    assert f"resets at {format_klaviyo_datetime(answered + timedelta(seconds=40000))}" in warning
    message = StateBuilder().with_stream_state("flow_series_reports", final).build()
    api.post(url("flow-series-reports"), json=series_answer)
    resumed = run_read(
        config(backfill_window_days={"flow_series_reports": 100}),
        {"flow_series_reports": SyncMode.incremental},
        state=message,
    )
    assert bodies(api, "flow-series-reports")[-1]["timeframe"]["start"] == asked[1]["timeframe"]["start"]
    assert len(resumed.records) == 41 and "unfinished_sync_end" not in stream_state(resumed, "flow_series_reports")


def test_an_empty_report_for_a_period_with_sends_is_a_warning(api):
    serve_account(api)
    api.get(
        url("events"),
        json={
            "data": [{"type": "event", "id": "E1", "attributes": {"datetime": "2026-11-20T00:00:00+00:00"}}],
            "links": {},
        },
    )
    empty = {"data": {"type": "flow-values-report", "attributes": {"results": []}}, "links": {}}
    api.post(url("flow-values-reports"), json=empty)
    output = run_read(
        config(backfill_window_days={"flow_values_reports": 30}), {"flow_values_reports": SyncMode.incremental}
    )
    assert "answered no rows" in all_output(output)
    assert json.dumps(stream_state(output, "flow_values_reports"))


def test_the_quota_warning_names_the_cap_klaviyo_s_429_gives_and_counts_its_reset_from_the_answer(api):
    serve_account(api)
    answered = NOW + timedelta(minutes=5)
    headers = {"RateLimit-Limit": "3", "RateLimit-Reset": "7200", "Date": format_datetime(answered, usegmt=True)}
    daily_429(api, "Request was throttled.", **headers)
    output = run_read(
        config(backfill_window_days={"flow_series_reports": 100}), {"flow_series_reports": SyncMode.incremental}
    )

    warning = quota_warning(output)
    assert "Klaviyo's daily limit of 3 requests (its RateLimit-Limit)" in warning and "225" not in warning
    assert f"resets at {format_klaviyo_datetime(answered + timedelta(hours=2))}" in warning
    assert stream_state(output, "flow_series_reports")["unfinished_sync_end"]
