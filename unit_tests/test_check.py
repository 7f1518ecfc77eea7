"""check: one one-record probe per stream; a rejected key fails, missing scopes warn by name."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

from airbyte_cdk.models import Status
from airbyte_cdk.test.entrypoint_wrapper import _run_command, make_file

from source_klaviyo import SourceKlaviyo
from source_klaviyo.endpoints import ENDPOINTS
from source_klaviyo.run import run
from source_klaviyo.streams import STREAM_CLASSES
from unit_tests.klaviyo_mock import API_KEY, all_output, config, error_body, url

ENDPOINT_NAMES = sorted({cls.endpoint_name for cls in STREAM_CLASSES})


def run_check(tmp_path, cfg):
    return _run_command(SourceKlaviyo(cfg), ["check", "--config", make_file(tmp_path / "config.json", cfg)])


def answer_every_endpoint(api, status_by_endpoint=None, revision="2026-07-15"):
    for name in ENDPOINT_NAMES:
        status = (status_by_endpoint or {}).get(name, 200)
        body = {"data": [], "links": {"self": url(name, revision)}} if status == 200 else error_body(status)
        api.get(url(name, revision), status_code=status, json=body)


def status_of(output):
    (message,) = output.connection_status_messages
    return message.connectionStatus


def test_a_working_key_passes_after_one_one_record_request_per_stream(api, tmp_path):
    answer_every_endpoint(api)
    status = status_of(run_check(tmp_path, config()))

    assert status.status == Status.SUCCEEDED
    assert api.call_count == len(STREAM_CLASSES)
    for call in api.request_history:
        query = dict(parse_qsl(urlsplit(call.url).query))
        name = urlsplit(call.url).path.split("/")[2]
        expected_size = "1" if ENDPOINTS["2026-07-15"][name].max_page_size else None
        assert query.get("page[size]") == expected_size


def test_the_retired_revision_is_probed_on_its_own_paths(api, tmp_path):
    answer_every_endpoint(api, revision="2023-10-15")
    status = status_of(run_check(tmp_path, config(revision="2023-10-15")))
    assert status.status == Status.SUCCEEDED
    assert all(urlsplit(call.url).path.endswith("/") for call in api.request_history)


def test_a_rejected_key_fails_with_a_message_that_says_what_to_fix(api, tmp_path):
    answer_every_endpoint(api, {name: 401 for name in ENDPOINT_NAMES})
    output = run_check(tmp_path, config())
    status = status_of(output)

    assert status.status == Status.FAILED
    assert "rejected the API key" in status.message and "`api_key`" in status.message
    assert api.call_count == 1
    assert API_KEY not in all_output(output)


def test_missing_scopes_pass_with_a_warning_naming_the_streams_and_scopes(api, tmp_path):
    answer_every_endpoint(api, {"campaigns": 403, "flows": 403})
    output = run_check(tmp_path, config())
    status = status_of(output)

    assert status.status == Status.SUCCEEDED
    assert "campaigns_email, campaigns_sms need `campaigns:read`" in status.message
    assert "flows needs `flows:read`" in status.message
    assert any("flows needs `flows:read`" in log.log.message for log in output.logs if log.log.level.name == "WARN")


def test_a_key_that_can_read_no_stream_fails(api, tmp_path):
    answer_every_endpoint(api, {name: 403 for name in ENDPOINT_NAMES})
    status = status_of(run_check(tmp_path, config()))
    assert status.status == Status.FAILED
    assert "lacks read scopes" in status.message


def test_invalid_config_on_the_cli_is_one_clear_error_and_no_traceback(tmp_path, capfd):
    path = make_file(
        tmp_path / "config.json", {"api_key": API_KEY, "start_date": "2024-13-01T00:00:00Z", "revision": "2024-02-15"}
    )

    run(["check", "--config", path])
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]

    traces = [line for line in lines if line["type"] == "TRACE"]
    (trace,) = traces
    assert trace["trace"]["error"]["failure_type"] == "config_error"
    assert "`start_date` is not a real date" in trace["trace"]["error"]["message"]
    assert "`revision`" in trace["trace"]["error"]["message"]
    (status,) = [line["connectionStatus"] for line in lines if line["type"] == "CONNECTION_STATUS"]
    assert status["status"] == "FAILED"
    assert not any("Traceback" in json.dumps(line) for line in lines)
    assert not trace["trace"]["error"].get("stack_trace")
