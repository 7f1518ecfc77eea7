"""Config: parsed once into a typed model; every problem named in one config error."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from jsonschema import Draft7Validator

from source_klaviyo.clock import NOW_VARIABLE, FixedClock, clock_from_environment, command_now
from source_klaviyo.config import (
    BACKFILL_POLICY_DAYS,
    MIN_RATE_LIMIT_SHARE,
    BackfillWindows,
    KlaviyoConfig,
    in_current_form,
    parse_config,
)
from source_klaviyo.run import run
from unit_tests.klaviyo_mock import API_KEY, NOW, QUERY, config

SPEC = json.loads((Path(__file__).parents[1] / "source_klaviyo" / "spec.json").read_text())["connectionSpecification"]


def problem(raw):
    with pytest.raises(AirbyteTracedException) as caught:
        parse_config(raw, NOW)
    assert caught.value.failure_type == FailureType.config_error
    return caught.value.message


def test_a_minimal_config_gets_the_documented_defaults():
    parsed = parse_config(config(), NOW)
    assert parsed.revision == "2026-07-15"
    assert parsed.num_workers == 10
    assert parsed.start_date is None
    assert parsed.api_key.get_secret_value() == API_KEY


@pytest.mark.parametrize(
    "raw, field, words",
    [
        ({}, "api_key", "is required"),
        ({"api_key": "sk_live_123"}, "api_key", "start with pk_"),
        ({"api_key": "pk_abc def"}, "api_key", "whitespace"),
        (config(start_date="2024-01-01"), "start_date", "must look like 2024-01-31T00:00:00Z"),
        (config(start_date="2024-01-01T00:00:00.000Z"), "start_date", "must look like"),
        (config(start_date="2024-02-30T00:00:00Z"), "start_date", "is not a real date"),
        (config(start_date="2099-01-01T00:00:00Z"), "start_date", "is in the future"),
        (config(revision="2024-02-15"), "revision", "2026-07-15"),
        (config(num_workers=0), "num_workers", "greater than or equal to 1"),
        (config(num_workers=51), "num_workers", "less than or equal to 50"),
        (config(backfill_window_days={"lists": -1}), "backfill_window_days.lists", "greater than or equal to 0"),
        (config(api_url="https://evil.example.com"), "api_url", "never sent anywhere else"),
        (config(api_url="http://a.klaviyo.com"), "api_url", "https://<host>.klaviyo.com"),
        (config(api_url="https://klaviyo.com.evil.io"), "api_url", "never sent anywhere else"),
        (config(api_url="http://10.0.0.5:8765"), "api_url", "loopback"),
        (config(api_url="https://user:pw@a.klaviyo.com"), "api_url", "never sent anywhere else"),
        (config(api_url="https://a.klaviyo.com/api"), "api_url", "without a path"),
        (
            config(events_custom_dates={"start": "2025-11-01", "end": "2025-12-01T00:00:00Z"}),
            "events_custom_dates.start",
            "must look like",
        ),
        (config(events_custom_dates={"start": "2025-11-01T00:00:00Z"}), "events_custom_dates.end", "is required"),
        (
            config(events_custom_dates={"start": "2025-12-01T00:00:00Z", "end": "2025-12-01T00:00:00Z"}),
            "events_custom_dates",
            "must have `end` after `start`",
        ),
        (config(event_metrics=["Placed Order", " "]), "event_metrics", "none of them empty"),
        (config(event_lookback_hours=-1), "event_lookback_hours", "greater than or equal to 0"),
        (config(profiles_predictive_analytics="maybe"), "profiles_predictive_analytics", "is invalid"),
        # Strict types: nothing is coerced into a number or a bool.
        (config(num_workers=True), "num_workers", "valid integer"),
        (config(num_workers="5"), "num_workers", "valid integer"),
        (config(num_workers=5.0), "num_workers", "valid integer"),
        (config(event_lookback_hours="24"), "event_lookback_hours", "valid integer"),
        (config(backfill_window_days={"events": False}), "backfill_window_days.events", "valid integer"),
        (config(profiles_predictive_analytics="true"), "profiles_predictive_analytics", "valid boolean"),
        (config(profiles_predictive_analytics=1), "profiles_predictive_analytics", "valid boolean"),
        (config(retry_budget_seconds="600"), "retry_budget_seconds", "valid integer"),
        # Bounds: no value can overflow a window.
        (config(backfill_window_days={"events": 1_000_000}), "backfill_window_days.events", "less than or equal to"),
        (config(start_date="0001-01-01T00:00:00Z"), "start_date", "between 1970 and 2100"),
        (
            config(events_custom_dates={"start": "2025-11-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}),
            "events_custom_dates.end",
            "between 1970 and 2100",
        ),
        (config(event_lookback_hours=10**30), "event_lookback_hours", "less than or equal to 720"),
        (config(rate_limit_share=0.05), "rate_limit_share", "must be from 0.1 to 1.0, got 0.05"),
        (config(rate_limit_share=2), "rate_limit_share", "must be from 0.1 to 1.0, got 2"),
        (config(rate_limit_share="0.5"), "rate_limit_share", "valid number"),
    ],
)
def test_each_bad_field_is_named_with_what_is_wrong(raw, field, words):
    message = problem(raw)
    assert f"`{field}`" in message and words in message, message


@pytest.mark.parametrize(
    "url, normalised",
    [
        ("https://a.klaviyo.com", "https://a.klaviyo.com/"),
        ("https://a.klaviyo.com/", "https://a.klaviyo.com/"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/"),
        ("http://localhost:9000/", "http://localhost:9000/"),
        ("http://[::1]:8765", "http://[::1]:8765/"),
    ],
)
def test_api_url_accepts_klaviyo_and_loopback_origins(url, normalised):
    assert parse_config(config(api_url=url), NOW).api_url == normalised


def test_several_problems_come_back_as_one_error():
    message = problem({"api_key": "nope", "start_date": "yesterday", "num_workers": "many"})
    assert all(f"`{field}`" in message for field in ("api_key", "start_date", "num_workers"))


def test_the_key_never_appears_in_a_config_error():
    message = problem({"api_key": "pk_secret_value_123", "start_date": "bad"})
    assert "pk_secret_value_123" not in message
    message = problem({"api_key": "sk_secret_value_456"})
    assert "sk_secret_value_456" not in message


@pytest.mark.parametrize("stream, days", [("events", 30), ("lists", 730), ("templates", 730), ("profiles", 730)])
def test_windowed_streams_start_their_first_sync_at_the_policy_window(stream, days):
    assert parse_config(config(), NOW).backfill_start(stream, NOW) == NOW - timedelta(days=days)


@pytest.mark.parametrize("stream", ["campaigns_email", "campaigns_sms", "metrics", "flows"])
def test_all_time_streams_have_no_first_sync_start(stream):
    assert parse_config(config(), NOW).backfill_start(stream, NOW) is None


def test_start_date_wins_when_it_is_later_than_the_window_and_bounds_all_time_streams():
    parsed = parse_config(config(start_date="2026-11-01T00:00:00Z"), NOW)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parsed.backfill_start("lists", NOW) == start
    assert parsed.backfill_start("flows", NOW) == start
    assert parse_config(config(start_date="2020-01-01T00:00:00Z"), NOW).backfill_start("lists", NOW) == NOW - timedelta(
        days=730
    )


def test_a_window_override_replaces_the_policy_and_zero_means_all_history():
    parsed = parse_config(config(backfill_window_days={"lists": 7, "templates": 0, "flows": 3}), NOW)
    assert parsed.backfill_start("lists", NOW) == NOW - timedelta(days=7)
    assert parsed.backfill_start("templates", NOW) is None
    assert parsed.backfill_start("flows", NOW) == NOW - timedelta(days=3)
    assert parsed.backfill_start("segments", NOW) == NOW - timedelta(days=730)


def test_spec_and_model_describe_the_same_fields_and_defaults():
    assert set(SPEC["properties"]) == set(KlaviyoConfig.model_fields)
    assert SPEC["required"] == ["api_key"]
    assert set(SPEC["properties"]["backfill_window_days"]["properties"]) == set(BackfillWindows.model_fields)
    assert set(BackfillWindows.model_fields) <= set(BACKFILL_POLICY_DAYS)
    assert SPEC["properties"]["revision"]["default"] == KlaviyoConfig.model_fields["revision"].default
    assert SPEC["properties"]["num_workers"]["default"] == KlaviyoConfig.model_fields["num_workers"].default
    share = SPEC["properties"]["rate_limit_share"]
    assert share["default"] == KlaviyoConfig.model_fields["rate_limit_share"].default == 1.0
    assert (share["type"], share["minimum"], share["maximum"]) == ("number", MIN_RATE_LIMIT_SHARE, 1.0)
    assert SPEC["properties"]["api_key"]["airbyte_secret"] is True
    for name, field in SPEC["properties"].items():
        assert {"title", "description", "order"} <= set(field), name


@pytest.mark.parametrize(
    "raw",
    [
        config(),
        config(start_date="2024-01-01T00:00:00Z", revision="2023-10-15", num_workers=1),
        config(backfill_window_days={"templates": 0, "campaigns_sms": 90}),
        config(start_date="2024-01-01"),
        config(revision="2025-01-01"),
        config(num_workers=0),
        config(backfill_window_days={"lists": -1}),
        config(backfill_window_days={"unknown": 1}),
        config(backfill_window_days={"events": 36_501}),
        config(metric_aggregates=QUERY),
        config(metric_aggregates=json.dumps(QUERY)),
        config(metric_aggregates=[{"name": "a", **QUERY}]),
        config(legacy_v1_campaigns=True),
        config(legacy_v1_campaigns="yes"),
        config(api_url="http://127.0.0.1:8765"),
        config(api_url="https://a.klaviyo.com/"),
        config(api_url="https://evil.example.com"),
        config(api_url="http://a.klaviyo.com"),
        config(rate_limit_share=0.5),
        config(rate_limit_share=1),
        config(rate_limit_share=0.1),
        config(rate_limit_share=0.09),
        config(rate_limit_share=1.01),
        config(rate_limit_share=0),
        config(rate_limit_share="0.5"),
        config(rate_limit_share=True),
        {"api_key": "sk_123"},
        {},
        # The official connector's settings, read as ours.
        config(disable_fetching_predictive_analytics=True, lookback_window=3, metric_ids="A,B", num_workers=2),
        config(lookback_window=400, reporting_lookback_window=400, event_metric_ids=" , "),
        config(disable_fetching_predictive_analytics="yes"),
        config(lookback_window=-1),
        config(lookback_window=1.5),
        config(metric_ids=["A"]),
        config(event_metric_ids=["A", "B"]),
        config(event_metric_ids=["A", 1]),
        config(lookback_window="7", event_lookback_hours=5),
    ],
)
def test_the_spec_accepts_exactly_what_the_model_accepts(raw):
    spec_accepts = Draft7Validator(SPEC).is_valid(in_current_form(raw))
    try:
        parse_config(raw, NOW)
        model_accepts = True
    except AirbyteTracedException:
        model_accepts = False
    assert spec_accepts == model_accepts


@pytest.mark.parametrize("example", SPEC["properties"]["metric_aggregates"]["examples"])
def test_each_metric_aggregates_example_the_form_shows_is_a_query_the_connector_runs(example):
    raw = config(metric_aggregates=example)
    assert Draft7Validator(SPEC).is_valid(raw)
    assert parse_config(raw, NOW).metric_aggregates, "at least one query"


def test_discover_with_bad_config_on_the_cli_exits_with_one_config_error(tmp_path, capfd):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api_key": "wrong"}))
    with pytest.raises(SystemExit) as exit_info:
        run(["discover", "--config", str(path)])
    assert exit_info.value.code == 1
    out = capfd.readouterr()
    traces = [json.loads(line) for line in out.out.splitlines() if '"type":"TRACE"' in line]
    (trace,) = traces
    assert trace["trace"]["error"]["failure_type"] == "config_error"
    assert "`api_key`" in trace["trace"]["error"]["message"]
    assert "Traceback" not in out.out + out.err


def test_an_unknown_key_gets_a_warning_naming_it_and_the_config_still_works(caplog):
    raw = config(start_dat="2024-01-01T00:00:00Z", num_workers=3, backfill_window_days={"contacts": 5, "lists": 9})
    parsed = parse_config(raw, NOW)
    assert parsed.num_workers == 3 and parsed.start_date is None and parsed.backfill_window_days.lists == 9
    (warning,) = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert "start_dat, backfill_window_days.contacts" in warning
    assert "2024-01-01" not in warning, "names the keys, never quotes their values"


def test_the_earliest_start_date_and_the_widest_window_still_make_a_first_sync_start():
    parsed = parse_config(config(start_date="1970-01-01T00:00:00Z", backfill_window_days={"events": 36_500}), NOW)
    assert parsed.backfill_start("events", NOW) == parsed.start_date


@pytest.mark.parametrize("pinned", ["tomorrow", "2026-13-01T00:00:00Z", "1969-12-31T23:59:59Z"])
def test_a_pinned_now_that_is_no_datetime_is_one_config_error_naming_the_variable(monkeypatch, pinned):
    monkeypatch.setenv(NOW_VARIABLE, pinned)
    with pytest.raises(AirbyteTracedException) as raised:
        clock_from_environment()
    assert raised.value.failure_type == FailureType.config_error
    assert NOW_VARIABLE in raised.value.message and repr(pinned) in raised.value.message


def test_the_command_now_is_whole_seconds_in_utc_whatever_the_clock_says():
    """Klaviyo's datetimes and the state are in seconds: a sub-second now made finished syncs look interrupted."""
    moment = datetime(2026, 12, 6, 5, 14, 7, 918_273, tzinfo=timezone(timedelta(hours=2)))
    assert command_now(FixedClock(moment)) == datetime(2026, 12, 6, 3, 14, 7, tzinfo=timezone.utc)
    naive = FixedClock(datetime(2026, 12, 6, 3, 14, 7, 500_000))  # noqa: DTZ001 - what a careless clock gives
    assert command_now(naive) == datetime(2026, 12, 6, 3, 14, 7, tzinfo=timezone.utc), "a naive clock reads UTC"


def test_the_cli_answers_a_bad_pinned_now_with_one_config_error_and_no_traceback(monkeypatch, capfd):
    monkeypatch.setenv(NOW_VARIABLE, "tomorrow")
    with pytest.raises(SystemExit) as exited:
        run(["spec"])
    out, err = capfd.readouterr()
    (line,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert exited.value.code == 1 and "Traceback" not in out + err
    assert (
        line["trace"]["error"]["failure_type"] == "config_error" and NOW_VARIABLE in line["trace"]["error"]["message"]
    )
