"""What the connector says, against the simulator: no warning that is not true, one line per retry and no
traceback above DEBUG, and never a quiet spell longer than it announced or than the metadata declares."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.expectations import all_history_config
from source_klaviyo.rate_limits import LONG_WAIT_SECONDS

DECLARED_SILENCE = yaml.safe_load((Path(__file__).parents[1] / "metadata.yaml").read_text())["data"][
    "maxSecondsBetweenMessages"
]
RETRY = re.compile(r"Attempt (\d+) of (\d+) failed; trying again in ([\d.]+) s\.$")
ANNOUNCED_WAIT = re.compile(r"the next request waits (\d+) s for its window")
# How long after an announced wait ends its request may still take to answer (the simulator answers in ms).
ANSWER_SLACK = 5.0


def test_check_and_a_read_of_every_stream_log_no_warning_and_no_parent_that_never_existed(klaviyo_sim, tmp_path):
    """Nothing is wrong and nothing was deleted: the probes of the per-parent streams ask for a parent that
    never existed and get 404, which is their answer, not a deleted parent."""
    config = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url)
    check = run_connector("check", tmp_path, config=config)
    catalog = configured_catalog(discovered_catalog(tmp_path, config))
    read = run_connector("read", tmp_path, config=config, catalog=catalog, timeout=600)

    assert check.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    assert read.returncode == 0, read.errors()
    assert len({m["record"]["stream"] for m in read.of_type("RECORD")}) > 20, "every kind of stream was read"
    for run in (check, read):
        assert run.logs("WARN", "ERROR", "FATAL") == []
        assert [message for message in run.logs() if "no longer exists" in message] == []


def test_a_read_through_intermittent_server_errors_logs_one_line_per_retry_and_nothing_louder(klaviyo_sim, tmp_path):
    config = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url)
    catalog = configured_catalog(discovered_catalog(tmp_path, config), ["lists", "segments", "templates", "metrics"])
    klaviyo_sim.faults.update({"error_rate": 0.3})
    run = run_connector("read", tmp_path, config=config, catalog=catalog)

    assert run.returncode == 0, run.errors()
    retries = [message for message in run.logs() if RETRY.search(message)]
    assert len(retries) == klaviyo_sim.stats["errors_injected"] > 0, "each answer retried is said once"
    assert all("(server error) to stream '" in message for message in retries), "each says what failed"
    assert run.logs("WARN", "ERROR", "FATAL") == []
    assert not [message for message in run.logs() if "Traceback" in message or "Backing off" in message]


def test_a_stream_whose_retries_run_out_logs_a_line_per_retry_and_one_traceback_at_debug(klaviyo_sim, tmp_path):
    """Klaviyo fails every request after the stream's probe: the one request left is retried within the 10 s
    budget, each retry said once at INFO; then one error for the stream, its traceback logged once, at DEBUG."""
    config = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url, retry_budget_seconds=10)
    catalog = configured_catalog(discovered_catalog(tmp_path, config), ["metrics"])
    klaviyo_sim.switch_faults_at(klaviyo_sim.stats["requests"] + 2, {"error_rate": 1.0})  # the probe passes
    run = run_connector("read", tmp_path, config=config, catalog=catalog, flags=["--debug"])

    assert run.returncode == 1
    (error,) = run.errors()
    assert error["stream_descriptor"]["name"] == "metrics" and error["failure_type"] == "transient_error"
    attempts = [RETRY.search(message) for message in run.logs("INFO")]
    numbers = [int(match[1]) for match in attempts if match]
    assert numbers == list(range(1, klaviyo_sim.stats["errors_injected"])), "every failure but the last is retried"
    assert not [message for message in run.logs() if "Traceback" in message]
    debug = [m["message"] for m in run.messages if m["type"] == "DEBUG" and "Traceback" in m["message"]]
    assert len(debug) == 1 and debug[0].startswith("Stream 'metrics' failed: Traceback"), debug


def test_a_report_read_announces_each_long_wait_and_stays_under_the_declared_silence(klaviyo_sim, tmp_path):
    """The Reporting API allows 2 requests a minute: a third request of a series report waits about a minute
    for its window. That wait is announced before it starts, so every silence longer than LONG_WAIT_SECONDS is
    one the log explained; no silence, and no stretch without a RECORD or STATE (the platform's heartbeat),
    reaches the metadata's maxSecondsBetweenMessages."""
    series = ["flow_series_reports", "form_series_reports", "segment_series_reports"]
    config = {
        **all_history_config(klaviyo_sim.dataset, klaviyo_sim.url),
        "backfill_window_days": dict.fromkeys(series, 130),
    }
    catalog = configured_catalog(discovered_catalog(tmp_path, config), series)
    run = run_connector("read", tmp_path, config=config, catalog=catalog, timed=True)

    assert run.returncode == 0, run.errors()
    announced = [
        (at, int(match[1]))
        for at, message in zip(run.arrivals, run.messages, strict=True)
        if message["type"] == "LOG" and (match := ANNOUNCED_WAIT.search(message["log"]["message"]))
    ]
    assert announced, "the third request of each stream waited for its window"
    long_silences = [(start, end) for start, end in run.silences() if end - start > LONG_WAIT_SECONDS]
    assert long_silences, "the read had to wait"
    for start, end in long_silences:
        assert any(at <= start and end <= at + wait + ANSWER_SLACK for at, wait in announced), (start, end, announced)
    assert max(end - start for start, end in run.silences()) < DECLARED_SILENCE
    assert max(end - start for start, end in run.silences({"RECORD", "STATE"})) < DECLARED_SILENCE
