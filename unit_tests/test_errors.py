"""How each kind of Klaviyo failure ends: retried to success, or one clear error without the key."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, FailureType, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder

from source_klaviyo.errors import MAX_RETRIES, key_rejected_message
from source_klaviyo.run import run
from unit_tests.klaviyo_mock import (
    API_KEY,
    all_output,
    config,
    error_body,
    is_probe,
    run_read,
    sample,
    serve_probe,
    url,
)

pytestmark = pytest.mark.usefixtures("one_window_per_range")

UPDATED = "2026-11-01T12:00:00+00:00"
PAGE = {"data": [sample("templates", 1, UPDATED), sample("templates", 2, UPDATED)], "links": {"self": url("templates")}}


def serve_templates(api, responses):
    """Answer the probe, then the data requests with `responses` in order."""
    api.get(url("templates"), responses)
    serve_probe(api, "templates")


def data_calls(api):
    return [call for call in api.request_history if not is_probe(call)]


def assert_key_absent(output):
    assert API_KEY not in all_output(output)


def test_a_rejected_key_fails_the_read_once_before_any_data_moves(api):
    api.get(url("templates"), status_code=401, json=error_body(401, "Incorrect authentication credentials."))
    api.get(url("metrics"), status_code=401, json=error_body(401))
    output = run_read(
        config(), {"templates": SyncMode.incremental, "metrics": SyncMode.full_refresh}, expect_failure=True
    )

    assert not output.records
    (error,) = output.errors
    assert error.trace.error.failure_type == FailureType.config_error
    assert error.trace.error.message == key_rejected_message()
    assert api.call_count == 1, "probing stops at the first 401"
    assert_key_absent(output)


def test_a_missing_scope_lets_the_readable_streams_read_then_ends_with_one_error_naming_scopes_and_streams(api):
    """Least-privilege keys are good practice: what the key can read is read in full, the rest named at the end."""
    serve_templates(api, [{"json": {"data": [sample("templates", 1, "2026-11-01T00:00:00+00:00")], "links": {}}}])
    serve_probe(api, "lists", status=403)
    serve_probe(api, "segments", status=403)
    output = run_read(
        config(),
        {"templates": SyncMode.incremental, "lists": SyncMode.incremental, "segments": SyncMode.incremental},
        expect_failure=True,
    )

    assert [record.record.stream for record in output.records] == ["templates"]
    (error,) = output.errors
    assert error.trace.error.failure_type == FailureType.config_error
    message = error.trace.error.message
    assert "lists need" in message or "lists needs" in message
    assert "`lists:read`" in message and "`segments:read`" in message and "templates" not in message
    assert {urlsplit(call.url).path for call in data_calls(api)} == {"/api/templates"}, "no blocked stream is read"
    statuses = {
        message.trace.stream_status.stream_descriptor.name: message.trace.stream_status.status.value
        for message in output.trace_messages
        if message.trace.stream_status
    }
    assert statuses["lists"] == statuses["segments"] == "INCOMPLETE" and statuses["templates"] == "COMPLETE"
    assert_key_absent(output)


def test_without_tags_read_campaigns_are_read_without_asking_for_their_tags_and_one_warning_names_the_scope(api):
    campaign = {**sample("campaigns", 1, UPDATED), "relationships": {"tags": {"links": {}}}}
    api.get(url("campaigns"), json={"data": [campaign], "links": {}})
    api.get(url("tags"), status_code=403, json=error_body(403))
    output = run_read(config(), {"campaigns_email": SyncMode.full_refresh})

    records = [message.record.data for message in output.records]
    assert records and not any("tag_ids" in record for record in records)
    asked = [dict(parse_qsl(urlsplit(call.url).query)) for call in api.request_history if call.path == "/api/campaigns"]
    assert asked and not any("include" in query for query in asked), "no request asks for what the key cannot read"
    warnings = [
        log.log.message for log in output.logs if log.log.level.name == "WARN" and "tags:read" in log.log.message
    ]
    assert len(warnings) == 1 and "campaigns_email without tag_ids" in warnings[0]


def test_a_bad_request_quotes_klaviyos_detail_and_parameter(api):
    body = error_body(400, "'updated' is not a valid field for the resource 'template'.", parameter="filter")
    serve_templates(api, [{"status_code": 400, "json": body}])
    output = run_read(config(), {"templates": SyncMode.incremental}, expect_failure=True)

    messages = [error.trace.error.message for error in output.errors]
    assert any(
        "templates" in m and "HTTP 400" in m and "'updated' is not a valid field" in m and "(parameter: filter)" in m
        for m in messages
    ), messages
    assert len(data_calls(api)) == 1, "a 400 is not retried"
    assert_key_absent(output)


def test_a_throttled_request_waits_for_retry_after_then_succeeds(api, backoff_sleeps):
    serve_templates(
        api,
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}, "json": error_body(429, "Request was throttled.")},
            {"json": PAGE},
        ],
    )
    output = run_read(config(), {"templates": SyncMode.incremental})

    assert len(output.records) == 2
    assert [s for s in backoff_sleeps if s] == [8], "Retry-After seconds, plus the CDK's one second of margin"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_and_timeouts_are_retried_with_backoff(api, backoff_sleeps, status):
    serve_templates(api, [{"status_code": status, "text": "upstream trouble"}, {"status_code": status}, {"json": PAGE}])
    output = run_read(config(), {"templates": SyncMode.incremental})

    assert len(output.records) == 2
    assert len(data_calls(api)) == 3
    assert backoff_sleeps == [1, 2], "exponential backoff between the tries"


def test_each_retry_logs_one_line_saying_what_failed_which_attempt_and_the_wait(api, backoff_sleeps):
    serve_templates(api, [{"status_code": 503}, {"status_code": 502}, {"json": PAGE}])
    output = run_read(config(), {"templates": SyncMode.incremental})

    mentions = [log.log for log in output.logs if "HTTP 50" in log.log.message or "retry" in log.log.message.lower()]
    assert [(log.level.name, log.message) for log in mentions] == [
        (
            "INFO",
            "Klaviyo answered HTTP 503 (server error) to stream 'templates'. (GET /api/templates) "
            "Attempt 1 of 9 failed; trying again in 1 s.",
        ),
        (
            "INFO",
            "Klaviyo answered HTTP 502 (server error) to stream 'templates'. (GET /api/templates) "
            "Attempt 2 of 9 failed; trying again in 2 s.",
        ),
    ]


def test_retries_that_run_out_end_in_one_error_and_log_no_traceback(api, backoff_sleeps):
    serve_templates(api, [{"status_code": 503}])
    output = run_read(config(), {"templates": SyncMode.incremental}, expect_failure=True)

    retries = [log.log.message for log in output.logs if "trying again in" in log.log.message]
    assert [message.split(" Attempt ")[1].split(" failed")[0] for message in retries] == [
        f"{n} of 9" for n in range(1, 9)
    ]
    assert not [log for log in output.logs if log.log.level.name in ("WARN", "ERROR", "FATAL")]
    assert not [log for log in output.logs if "Traceback" in log.log.message]
    (error,) = output.errors
    assert (
        error.trace.error.stream_descriptor.name == "templates"
        and "stopped after retrying" in error.trace.error.message
    )


def test_connection_errors_and_truncated_bodies_are_retried(api, backoff_sleeps):
    import requests

    serve_templates(
        api,
        [
            {"exc": requests.exceptions.ConnectionError("connection reset by peer")},
            {"exc": requests.exceptions.ReadTimeout("read timed out")},
            {"text": '{"data": [{"type": "template", "id": "TE'},
            {"json": PAGE},
        ],
    )
    output = run_read(config(), {"templates": SyncMode.incremental})

    assert len(output.records) == 2
    assert len(data_calls(api)) == 4


def test_retries_end_in_a_clear_error_when_the_fault_never_clears(api, backoff_sleeps):
    serve_templates(api, [{"status_code": 503}])
    output = run_read(config(), {"templates": SyncMode.incremental}, expect_failure=True)

    assert not output.records
    assert len(data_calls(api)) == MAX_RETRIES + 1
    messages = " ".join(error.trace.error.message for error in output.errors)
    assert "Stream 'templates' stopped after retrying up to 8 times" in messages
    assert "the last failure: Klaviyo answered HTTP 503" in messages
    assert {error.trace.error.failure_type for error in output.errors} <= {
        FailureType.transient_error,
        FailureType.config_error,
    }
    assert_key_absent(output)


def test_a_retired_revision_says_which_revision_to_choose(api):
    revision = "2023-10-15"
    api.get(
        url("templates", revision),
        [
            {"json": {"data": [], "links": {"self": url("templates", revision)}}},
            {"status_code": 410, "json": error_body(410)},
        ],
    )
    output = run_read(config(revision=revision), {"templates": SyncMode.incremental}, expect_failure=True)

    messages = [error.trace.error.message for error in output.errors]
    assert any("revision 2023-10-15 is retired" in m and "Set `revision` to 2026-07-15" in m for m in messages), (
        messages
    )


def test_a_next_link_to_another_host_is_not_followed(api):
    page = {
        **PAGE,
        "links": {"self": url("templates"), "next": "https://evil.example.com/api/templates?page%5Bcursor%5D=2"},
    }
    serve_templates(api, [{"json": page}])
    output = run_read(config(), {"templates": SyncMode.incremental}, expect_failure=True)

    assert all("evil.example.com" not in call.url for call in api.request_history)
    assert any("next-page link outside" in error.trace.error.message for error in output.errors)


def test_debug_logging_through_the_cli_never_shows_the_key(api, tmp_path, capfd):
    serve_templates(api, [{"json": PAGE}])
    (tmp_path / "config.json").write_text(json.dumps(config()))
    catalog = CatalogBuilder().with_stream("templates", SyncMode.incremental).build()
    (tmp_path / "catalog.json").write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog)))

    run(["read", "--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json"), "--debug"])

    captured = capfd.readouterr()
    assert captured.out.count('"type":"RECORD"') == 2
    assert "Making outbound API request" in captured.out, "debug logs, which carry request headers, were on"
    assert API_KEY not in captured.out + captured.err
