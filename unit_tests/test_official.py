"""Moving a connection from the official Airbyte Klaviyo connector: its streams, states and settings read as ours."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timezone

import pytest
from airbyte_cdk.models import AirbyteStateMessage, AirbyteStream, FailureType, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import discover
from airbyte_cdk.test.state_builder import StateBuilder
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.catalog import checked_catalog
from source_klaviyo.config import DEFAULT_EVENT_LOOKBACK_HOURS, DEFAULT_REPORTING_LOOKBACK_DAYS, parse_config
from source_klaviyo.incoming_state import per_stream, taken_over
from source_klaviyo.official import OFFICIAL_STREAMS
from source_klaviyo.streams.profiles import PROFILE_CURSORS
from unit_tests.klaviyo_mock import NOW, QUERY, config, data_requests, filter_terms, run_read, sample, serve_pages
from unit_tests.klaviyo_mock import source as klaviyo_source


@functools.cache
def ours() -> dict[str, AirbyteStream]:
    """Every stream of ours, as discover describes it (discover sends no request for this config)."""
    everything = config(
        events_custom_dates={"start": "2025-11-01T00:00:00Z", "end": "2025-12-01T00:00:00Z"},
        metric_aggregates=QUERY,
        conversion_metric="Placed Order",
    )
    return {stream.name: stream for stream in discover(klaviyo_source(), everything).catalog.catalog.streams}


def states(**by_stream: dict) -> list[AirbyteStateMessage]:
    return [per_stream(name, state) for name, state in by_stream.items()]


def as_dict(messages: list[AirbyteStateMessage]) -> dict[str, dict]:
    return {m.stream.stream_descriptor.name: dict(m.stream.stream_state.__dict__) for m in messages}


def lines(caplog, level: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelname == level]


@pytest.mark.parametrize("official", OFFICIAL_STREAMS)
def test_each_official_stream_leads_to_streams_of_ours_and_its_state_to_one_of_their_cursors(official):
    facts, streams = OFFICIAL_STREAMS[official], ours()
    assert set(facts.ours) <= set(streams)
    if facts.resumes is None:
        assert all(streams[name].supported_sync_modes == [SyncMode.full_refresh] for name in facts.ours)
        return
    stream, cursor = facts.resumes
    assert stream in facts.ours and SyncMode.incremental in streams[stream].supported_sync_modes
    assert cursor in (PROFILE_CURSORS if stream == "profiles" else streams[stream].default_cursor_field)


def test_the_official_one_value_states_are_read_under_our_names_cursors_and_datetime_format(caplog):
    caplog.set_level(logging.INFO)
    taken = taken_over(
        states(
            email_templates={"updated": "2026-05-31T12:30:00+0000"},
            global_exclusions={"updated": "2026-05-30 08:00:00+00:00"},
            events_detailed={"datetime": "2026-05-29T23:59:59.250000+0000"},
        )
    )

    assert as_dict(taken) == {
        "templates": {"updated": "2026-05-31T12:30:00Z"},
        "global_exclusions": {"timestamp": "2026-05-30T08:00:00Z"},
        "events": {"datetime": "2026-05-29T23:59:59Z"},
    }
    info = "\n".join(lines(caplog, "INFO"))
    assert "Stream email_templates (the official connector's) is taken over as templates" in info
    assert "Stream global_exclusions (the official connector's) is taken over as global_exclusions" in info


def test_a_finished_per_partition_state_resumes_from_its_newest_value_less_the_sync_s_duration():
    """The CDK's per-partition shape, as the official lists_detailed and report streams write it."""
    lists_detailed = {
        "use_global_cursor": False,
        "states": [
            {"partition": {"id": "Y6nRLr", "parent_slice": {}}, "cursor": {"updated": "2024-01-02T00:00:00+0000"}},
            {"partition": {"id": "Xq2Lm9", "parent_slice": {}}, "cursor": {"updated": "2026-05-31T10:00:00+0000"}},
        ],
        "state": {"updated": "2026-05-31T10:00:00+0000"},
        "lookback_window": 90,
        "parent_state": {"lists": {"updated": "2026-05-31T10:00:00+0000"}},
    }
    reports = {
        "states": [
            {"partition": {"metric_id": "RESQ6t", "parent_slice": {}}, "cursor": {"date": "2026-05-30T23:59:59+0000"}}
        ]
    }
    taken = taken_over(states(lists_detailed=lists_detailed, campaign_values_reports=reports))
    assert as_dict(taken) == {
        "lists": {"updated": "2026-05-31T09:58:30Z"},
        "campaign_values_reports": {"start": "2026-05-30T23:59:59Z"},
    }


def test_an_unfinished_per_partition_state_resumes_from_its_earliest_partition():
    flow_series = {
        "states": [
            {"partition": {"metric_id": "A"}, "cursor": {"date": "2026-05-30T23:59:59+0000"}},
            {"partition": {"metric_id": "B"}, "cursor": {"date": "2026-04-30T23:59:59+0000"}},
            {"partition": {"metric_id": "C"}, "cursor": {}},
        ]
    }
    assert as_dict(taken_over(states(flow_series_reports=flow_series))) == {
        "flow_series_reports": {"date": "2026-04-30T23:59:59Z"}
    }


def test_two_official_states_of_one_stream_of_ours_resume_it_from_the_earlier(caplog):
    caplog.set_level(logging.INFO)
    taken = taken_over(
        states(
            events={"datetime": "2026-05-31T00:00:00+00:00"}, events_detailed={"datetime": "2026-05-20T00:00:00+0000"}
        )
    )
    assert as_dict(taken) == {"events": {"datetime": "2026-05-20T00:00:00Z"}}
    dropped = (
        "Stream events: its state is not used, events resumes from the state of events_detailed, which is earlier."
    )
    assert dropped in lines(caplog, "INFO")


def test_a_state_this_connector_wrote_wins_over_an_official_one_for_the_same_stream():
    ours = {"state_type": "date-range", "slices": [{"start": "2026-01-01T00:00:00Z", "end": "2026-05-31T00:00:00Z"}]}
    taken = taken_over(states(templates=ours, email_templates={"updated": "2020-01-01T00:00:00+0000"}))
    assert as_dict(taken) == {"templates": ours}


def test_this_connector_s_own_report_state_is_left_as_it_is():
    ours = {"date": "2026-11-30T09:15:00-05:00", "quota": {"day": "2026-11-30", "spent": 9}}
    assert as_dict(taken_over(states(flow_series_reports=ours))) == {"flow_series_reports": ours}


def test_the_state_of_an_official_stream_read_in_full_here_is_dropped_naming_the_streams_that_hold_its_records(
    caplog,
):
    caplog.set_level(logging.INFO)
    campaigns = {
        "states": [
            {
                "partition": {"archived": "false", "campaign_type": "email"},
                "cursor": {"updated_at": "2026-05-31T00:00:00+0000"},
            }
        ]
    }
    flows = {"updated": "2026-05-31T00:00:00+00:00", "archived": {"updated": "2026-05-01T00:00:00+00:00"}}

    assert taken_over(states(campaigns=campaigns, flows=flows)) == []
    info = lines(caplog, "INFO")
    assert any("Stream campaigns:" in line and "campaigns_email, campaigns_sms here" in line for line in info)
    assert any("Stream flows:" in line and "read in full on every sync" in line for line in info)


@pytest.mark.parametrize(
    "state, why",
    [
        ({"updated": "last tuesday"}, "its `updated` is not a datetime after 1970"),
        ({"updated": "0001-01-01T00:00:00+0000"}, "its `updated` is not a datetime after 1970"),
        ({"states": [{"partition": {"id": "L"}, "cursor": {}}]}, "none of its partitions holds a `updated` value"),
        ({"states": "garbage"}, "none of its partitions holds a `updated` value"),
        ({"state": {"updated": "2026-05-31T00:00:00+0000"}, "lookback_window": 10**30}, "out of the range of dates"),
    ],
    ids=["not-a-datetime", "year-one", "no-partition-value", "not-a-list", "look-back-past-all-dates"],
)
def test_an_official_state_that_cannot_be_read_is_named_in_a_warning_and_the_stream_reads_as_a_first_sync(
    caplog, state, why
):
    assert taken_over(states(lists_detailed=state)) == []
    (warning,) = lines(caplog, "WARNING")
    assert warning.startswith("Ignoring the state of stream lists_detailed:") and why in warning


def test_an_official_templates_state_resumes_our_templates_stream_in_a_read(api):
    serve_pages(api, "templates", [[sample("templates", 0, "2026-06-01T00:00:00+00:00")]])
    state = StateBuilder().with_stream_state("email_templates", {"updated": "2026-05-31T12:30:00+0000"}).build()

    output = run_read(config(), {"templates": SyncMode.incremental}, state=state)

    (request,) = data_requests(api)
    assert "greater-or-equal(updated,2026-05-31T12:30:00Z)" in filter_terms(request["query"])
    assert len(output.records) == 1


def test_a_catalog_of_an_official_connection_names_the_streams_that_hold_its_records_here():
    catalog = {"email_templates": None, "lists": None}
    with pytest.raises(AirbyteTracedException) as raised:
        checked_catalog(catalog, parse_config(config(), NOW))  # type: ignore[arg-type]
    assert raised.value.failure_type == FailureType.config_error
    assert "email_templates (the official connector's; here templates)" in raised.value.message


OFFICIAL_CONFIG = config(
    start_date="2024-01-01T00:00:00Z",
    num_workers=3,
    disable_fetching_predictive_analytics=False,
    lookback_window=2,
    event_metric_ids="RESQ6t, Y6nRLr,",
    metric_ids="VevE7N",
    reporting_lookback_window=5,
)


def test_an_official_config_is_read_with_each_setting_s_meaning_here(caplog):
    caplog.set_level(logging.INFO)
    parsed = parse_config(OFFICIAL_CONFIG, NOW)

    assert parsed.start_date == datetime(2024, 1, 1, tzinfo=timezone.utc) and parsed.num_workers == 3
    assert parsed.profiles_predictive_analytics is True, "the official connector fetches them unless disabled"
    assert parsed.event_lookback_hours == 48
    assert parsed.event_metrics == ["RESQ6t", "Y6nRLr"]
    assert parsed.conversion_metric == "VevE7N"
    assert parsed.reporting_lookback_days == 5
    assert not lines(caplog, "WARNING"), "nothing unknown, nothing lost"
    read_as = "The official connector's setting lookback_window=2 is read as event_lookback_hours=48."
    assert read_as in lines(caplog, "INFO")


def test_our_own_setting_wins_over_the_official_one_with_a_line_saying_so(caplog):
    caplog.set_level(logging.INFO)
    parsed = parse_config({**OFFICIAL_CONFIG, "event_lookback_hours": 6, "profiles_predictive_analytics": False}, NOW)
    assert parsed.event_lookback_hours == 6 and parsed.profiles_predictive_analytics is False
    ignored = (
        "The official connector's setting lookback_window=2 is not used: event_lookback_hours is set too, and wins."
    )
    assert ignored in lines(caplog, "INFO")


def test_a_look_back_of_0_the_official_default_leaves_ours_at_its_default(caplog):
    caplog.set_level(logging.INFO)
    parsed = parse_config(config(lookback_window=0, reporting_lookback_window=0), NOW)
    assert parsed.event_lookback_hours == DEFAULT_EVENT_LOOKBACK_HOURS
    assert parsed.reporting_lookback_days == DEFAULT_REPORTING_LOOKBACK_DAYS
    kept = (
        "The official connector's setting lookback_window=0 sets nothing here: event_lookback_hours keeps its default."
    )
    assert kept in lines(caplog, "INFO")


@pytest.mark.parametrize(
    "setting, field, value, words",
    [
        ({"lookback_window": 45}, "event_lookback_hours", 720, "reads at most 720 hours again, so 720"),
        ({"reporting_lookback_window": 120}, "reporting_lookback_days", 90, "reads at most 90 days again, so 90"),
        ({"metric_ids": "VevE7N,RESQ6t"}, "conversion_metric", "VevE7N", "one conversion metric, VevE7N; RESQ6t not"),
        ({"metric_ids": " "}, "conversion_metric", None, "read for every metric there"),
    ],
    ids=["events-look-back-beyond-ours", "reports-look-back-beyond-ours", "several-conversion-metrics", "every-metric"],
)
def test_what_of_an_official_setting_does_not_carry_over_is_named_in_a_warning(caplog, setting, field, value, words):
    parsed = parse_config(config(**setting), NOW)
    assert getattr(parsed, field) == value
    (warning,) = lines(caplog, "WARNING")
    assert warning.startswith(f"The official connector's setting {next(iter(setting))}=") and words in warning


@pytest.mark.parametrize(
    "setting, named",
    [
        ({"disable_fetching_predictive_analytics": "yes"}, "`profiles_predictive_analytics`"),
        ({"lookback_window": True}, "`event_lookback_hours`"),
        ({"lookback_window": -1}, "`event_lookback_hours`"),
        ({"metric_ids": ["VevE7N"]}, "`conversion_metric`"),
        ({"event_metric_ids": 7}, "`event_metrics`"),
    ],
)
def test_an_official_setting_of_the_wrong_type_is_refused_naming_it(setting, named):
    with pytest.raises(AirbyteTracedException) as raised:
        parse_config(config(**setting), NOW)
    official = next(iter(setting))
    assert f"{named} (given as the official connector's `{official}`)" in raised.value.message


def test_a_null_official_setting_sets_nothing():
    parsed = parse_config(config(lookback_window=None, metric_ids=None), NOW)
    assert parsed.event_lookback_hours == DEFAULT_EVENT_LOOKBACK_HOURS and parsed.conversion_metric is None
