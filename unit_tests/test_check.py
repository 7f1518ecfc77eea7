"""check: one one-record probe per stream; a rejected key fails, missing scopes warn by name."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlsplit

from airbyte_cdk.models import Status
from airbyte_cdk.test.entrypoint_wrapper import _run_command, make_file

from source_klaviyo.endpoints import ENDPOINTS
from source_klaviyo.run import run
from source_klaviyo.streams import STREAM_CLASSES
from unit_tests.klaviyo_mock import API_KEY, QUERY, all_output, config, error_body, source, url

ENDPOINT_NAMES = sorted(
    {cls.endpoint_name for cls in STREAM_CLASSES if not cls.endpoint_name.endswith("-reports")}
    - {"v1/campaigns", "metric-aggregates"}
    | {"accounts"}
)
V1_URL = "https://a.klaviyo.com/api/v1/campaigns"
# Without their settings, events_custom_dates, metric_aggregates and campaigns_v1 are not offered, nor probed;
# an account without a "Placed Order" metric (the metrics list is empty here) is offered no campaign or flow
# reports. Besides one probe per stream offered: the metrics (a probe and a page) and the account. The scopes of
# what streams include (tags for campaigns, flows, lists and segments; the metric for events) are not asked again:
# the tags and metrics streams' own probes tell them.
PROBED = len(STREAM_CLASSES) - 3 - 3 + 3
V1 = config(legacy_v1_campaigns=True)


def run_check(tmp_path, cfg):
    return _run_command(source(), ["check", "--config", make_file(tmp_path / "config.json", cfg)])


def answer_every_endpoint(api, status_by_endpoint=None, revision="2026-07-15"):
    for name in ENDPOINT_NAMES:
        if name not in ENDPOINTS[revision]:
            continue
        status = (status_by_endpoint or {}).get(name, 200)
        body = {"data": [], "links": {"self": "https://a.klaviyo.com/api"}} if status == 200 else error_body(status)
        api.get(url(name, revision), status_code=status, json=body)
    v1_status = (status_by_endpoint or {}).get("v1/campaigns", 200)
    v1_body = {"object": "$list", "data": [], "page": 0, "total": 0} if v1_status == 200 else {"status": v1_status}
    api.get(V1_URL, status_code=v1_status, json=v1_body)


def pattern(name: str) -> str:
    """The request paths of an endpoint: a parent's children for any parent."""
    return "/api/" + re.escape(name).replace(re.escape("{id}"), "[^/]+")


def status_of(output):
    (message,) = output.connection_status_messages
    return message.connectionStatus


def test_a_working_key_passes_after_one_one_record_request_per_stream(api, tmp_path):
    answer_every_endpoint(api)
    status = status_of(run_check(tmp_path, config()))

    assert status.status == Status.SUCCEEDED
    assert api.call_count == PROBED
    for call in api.request_history:
        query = dict(parse_qsl(urlsplit(call.url).query))
        (facts,) = [e for e in ENDPOINTS["2026-07-15"].values() if re.fullmatch(pattern(e.name), call.path)]
        assert query.get("page[size]") == ("1" if facts.max_page_size else None), call.url


def test_the_retired_revision_is_probed_on_its_own_paths(api, tmp_path):
    answer_every_endpoint(api, revision="2023-10-15")
    status = status_of(run_check(tmp_path, config(revision="2023-10-15")))
    assert status.status == Status.SUCCEEDED
    paths = [urlsplit(call.url).path for call in api.request_history]
    assert all(path.endswith("/") for path in paths if path != "/api/v1/campaigns")


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
    assert "campaigns_email, campaigns_push, campaigns_sms need `campaigns:read`" in status.message
    assert "flows needs `flows:read`" in status.message
    assert any("flows needs `flows:read`" in log.log.message for log in output.logs if log.log.level.name == "WARN")


def test_a_key_without_tags_read_is_told_which_streams_read_without_tag_ids_not_that_they_lack_their_own_scope(
    api, tmp_path
):
    """Klaviyo's relationship guide: a key needs read access to the endpoint and to each resource it includes."""
    answer_every_endpoint(api, {"tags": 403, "tag-groups": 403})
    status = status_of(run_check(tmp_path, config()))

    assert status.status == Status.SUCCEEDED
    assert "lacks `tags:read`" in status.message
    for stream in ("campaigns_email", "flows", "lists", "segments"):
        assert f"{stream} without tag_ids" in status.message, stream
    assert "campaigns:read" not in status.message and "lists:read" not in status.message


def test_a_key_that_can_read_no_stream_fails(api, tmp_path):
    answer_every_endpoint(api, {**{name: 403 for name in ENDPOINT_NAMES}, "v1/campaigns": 410})
    status = status_of(run_check(tmp_path, V1))
    assert status.status == Status.FAILED
    assert "lacks read scopes" in status.message


def test_check_touches_the_retired_v1_api_only_when_the_config_opts_in(api, tmp_path):
    answer_every_endpoint(api)
    assert status_of(run_check(tmp_path, config())).status == Status.SUCCEEDED
    assert not [call for call in api.request_history if call.path == "/api/v1/campaigns"]
    assert api.call_count == PROBED


def test_the_retired_v1_api_passes_check_with_a_warning_naming_its_replacements(api, tmp_path):
    answer_every_endpoint(api, {"v1/campaigns": 410})
    output = run_check(tmp_path, V1)
    status = status_of(output)

    assert status.status == Status.SUCCEEDED
    assert (
        "campaigns_v1 cannot be read" in status.message
        and "campaigns_email, campaigns_sms and campaigns_push" in status.message
    )
    (v1,) = [call for call in api.request_history if call.path == "/api/v1/campaigns"]
    assert API_KEY not in all_output(output), "the key travels in v1's URL but never appears in output"


def test_a_metric_aggregates_query_klaviyo_rejects_fails_check_with_klaviyos_words(api, tmp_path):
    answer_every_endpoint(api)
    detail = "The time range may span at most one year."
    api.post(url("metric-aggregates"), status_code=400, json=error_body(400, detail, parameter="filter"))
    status = status_of(run_check(tmp_path, config(metric_aggregates=QUERY)))

    assert status.status == Status.FAILED
    assert detail in status.message and "(parameter: filter)" in status.message


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


def test_check_says_why_campaign_and_flow_reports_are_not_offered(api, tmp_path):
    answer_every_endpoint(api)  # the account's metrics hold no "Placed Order"
    status = status_of(run_check(tmp_path, config()))

    assert status.status == Status.SUCCEEDED
    for name in ("campaign_values_reports", "flow_values_reports", "flow_series_reports"):
        assert name in status.message
    assert 'no "Placed Order" metric' in status.message and "`conversion_metric`" in status.message
    assert "segment_series_reports" not in status.message


def test_check_while_klaviyo_is_down_answers_one_failed_status_and_no_error_trace(api, tmp_path, capfd):
    """Through the CLI's entry point: the CDK alone would print the error twice and no status at all."""
    api.get(re.compile(r"https://a\.klaviyo\.com/.*"), status_code=503, json=error_body(503))
    (tmp_path / "config.json").write_text(json.dumps(config(retry_budget_seconds=10)))
    capfd.readouterr()
    run(["check", "--config", str(tmp_path / "config.json")])
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    statuses = [line["connectionStatus"] for line in lines if line["type"] == "CONNECTION_STATUS"]
    traces = [line for line in lines if line["type"] == "TRACE" and line["trace"]["type"] == "ERROR"]
    assert [status["status"] for status in statuses] == ["FAILED"] and not traces, lines
    assert "503" in statuses[0]["message"] or "down" in statuses[0]["message"], statuses[0]["message"]


def test_check_retries_an_outage_for_a_minute_at_most_whatever_the_retry_budget(api, tmp_path, capfd):
    """A person waits on check in the form: the 600 s a read may retry would keep them ten minutes."""
    api.get(re.compile(r"https://a\.klaviyo\.com/.*"), status_code=503, json=error_body(503))
    for budget, named in [(600, "(60 s)"), (20, "(20 s)")]:
        (tmp_path / "config.json").write_text(json.dumps(config(retry_budget_seconds=budget)))
        capfd.readouterr()
        run(["check", "--config", str(tmp_path / "config.json")])
        lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
        (status,) = [line["connectionStatus"] for line in lines if line["type"] == "CONNECTION_STATUS"]
        assert status["status"] == "FAILED" and named in status["message"], status
