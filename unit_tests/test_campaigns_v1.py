"""campaigns_v1: the retired v1 API's paging and shape, its 410, and the key it carries in the URL."""

from __future__ import annotations

import contextlib
import json

from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, FailureType, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder

from source_klaviyo.run import run
from unit_tests.klaviyo_mock import API_KEY, all_output, config, run_read

V1 = config(legacy_v1_campaigns=True)  # campaigns_v1 is offered only to who opts in

V1_URL = "https://a.klaviyo.com/api/v1/campaigns"


def campaign(index):
    return {
        "object": "campaign",
        "id": f"V1C{index}",
        "name": f"Newsletter {index}",
        "subject": "Hello",
        "from_email": "news@example.com",
        "from_name": "Example",
        "lists": [{"object": "list", "id": "L1", "name": "All"}],
        "excluded_lists": [],
        "status": "sent",
        "status_id": 1,
        "status_label": "Sent",
        "sent_at": "2023-04-05 06:07:08",
        "send_time": "2023-04-05 06:00:00",
        "created": "2023-04-01 10:00:00",
        "updated": "2023-04-05 06:07:08",
        "num_recipients": 1200,
        "campaign_type": "Regular",
        "is_segmented": False,
        "message_type": "email",
        "template_id": "T1",
    }


def serve_v1(api, total):
    def respond(request, context):
        page, count = int(request.qs["page"][0]), int(request.qs["count"][0])
        items = [campaign(i) for i in range(page * count, min(total, (page + 1) * count))]
        return {
            "object": "$list",
            "page": page,
            "start": page * count,
            "end": page * count + len(items) - 1,
            "total": total,
            "page_size": len(items),
            "data": items,
        }

    api.get(V1_URL, json=respond)


def test_v1_pages_with_page_and_count_and_flattens_its_campaigns(api):
    serve_v1(api, total=250)
    output = run_read(V1, {"campaigns_v1": SyncMode.full_refresh})

    records = [r.record.data for r in output.records]
    assert [r["id"] for r in records] == [f"V1C{i}" for i in range(250)]
    pages = [(call.qs["page"], call.qs["count"]) for call in api.request_history[1:]]
    assert pages == [(["0"], ["100"]), (["1"], ["100"]), (["2"], ["100"])]
    assert records[0]["list_ids"] == ["L1"] and records[0]["excluded_list_ids"] == []
    assert records[0]["created"] == "2023-04-01T10:00:00+00:00", "v1 dates as ISO-8601 UTC"
    assert all("Authorization" not in call.headers for call in api.request_history)


def test_the_retired_v1_api_ends_the_read_with_one_error_naming_the_replacements(api):
    api.get(V1_URL, status_code=410, json={"status": 410, "message": "This API version is no longer supported."})
    output = run_read(V1, {"campaigns_v1": SyncMode.full_refresh}, expect_failure=True)

    (error,) = output.errors
    assert error.trace.error.failure_type == FailureType.config_error
    assert (
        "2024-06-30" in error.trace.error.message
        and "campaigns_email, campaigns_sms and campaigns_push" in error.trace.error.message
    )
    assert API_KEY not in all_output(output)


def test_the_key_in_v1_urls_is_masked_in_every_log_line_and_error(api, tmp_path, capfd):
    api.get(
        V1_URL, [{"json": {"object": "$list", "page": 0, "total": 0, "data": []}}, {"status_code": 500, "text": "boom"}]
    )
    (tmp_path / "config.json").write_text(json.dumps(V1))
    catalog = CatalogBuilder().with_stream("campaigns_v1", SyncMode.full_refresh).build()
    (tmp_path / "catalog.json").write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog)))

    with contextlib.suppress(SystemExit):
        run(["read", "--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json"), "--debug"])
    captured = capfd.readouterr()
    assert API_KEY in api.request_history[-1].url, "v1 does carry the key in its URL"
    assert "api_key=****" in captured.out, "the URL was logged, masked"
    assert "Klaviyo answered HTTP 500" in captured.out
    assert API_KEY not in captured.out + captured.err
