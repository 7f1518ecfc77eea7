"""Memberships and exclusions: the rows they make of Klaviyo's profiles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.state_builder import StateBuilder

from source_klaviyo.clock import format_klaviyo_datetime
from unit_tests.klaviyo_mock import (
    NOW,
    config,
    data_requests,
    error_body,
    filter_terms,
    resource,
    run_read,
    serve_pages,
)

pytestmark = pytest.mark.usefixtures("one_window_per_range")


def at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def profile(profile_id, suppression=(), list_suppressions=()):
    marketing = {"suppression": list(suppression), "list_suppressions": list(list_suppressions)}
    attributes = {
        "email": f"{profile_id}@example.com",
        "phone_number": "+15550100",
        "subscriptions": {"email": {"marketing": marketing}},
    }
    return {**resource("profiles", profile_id, attributes), "type": "profile"}


def ada(joined: str) -> dict:
    """A list member as Klaviyo answers /api/lists/{id}/profiles with the sparse fieldset the stream asks for."""
    return {
        "type": "profile",
        "id": "P1",
        "attributes": {"email": "ada@example.com", "phone_number": None, "joined_group_at": joined},
        "links": {"self": "https://a.klaviyo.com/api/profiles/P1"},
    }


def test_a_global_exclusion_row_is_a_profile_with_its_latest_suppression_inside_the_window(api):
    profiles = [
        profile("P1", [{"reason": "HARD_BOUNCE", "timestamp": at(400)}, {"reason": "UNSUBSCRIBE", "timestamp": at(3)}]),
        profile("P2", [{"reason": "SPAM_COMPLAINT", "timestamp": at(1)}]),
        profile("P3"),  # matched by a list suppression only: not a global exclusion
    ]
    serve_pages(api, "profiles", [profiles])
    output = run_read(config(num_workers=1), {"global_exclusions": SyncMode.incremental})

    rows = [message.record.data for message in output.records]
    assert rows == [
        {
            "id": "P1",
            "email": "P1@example.com",
            "phone_number": "+15550100",
            "reason": "UNSUBSCRIBE",
            "timestamp": at(3),
        },
        {
            "id": "P2",
            "email": "P2@example.com",
            "phone_number": "+15550100",
            "reason": "SPAM_COMPLAINT",
            "timestamp": at(1),
        },
    ]
    (request,) = data_requests(api)
    field = "subscriptions.email.marketing.suppression.timestamp"
    assert request["query"]["sort"] == field and request["query"]["additional-fields[profile]"] == "subscriptions"
    assert [term.split("(")[0] for term in filter_terms(request["query"])] == ["greater-or-equal", "less-than"]
    assert all(f"({field}," in term for term in filter_terms(request["query"]))


def test_a_list_exclusion_row_per_list_suppression_inside_the_window(api):
    outside = {
        "list_id": "L0",
        "reason": "USER_SUPPRESSED",
        "timestamp": format_klaviyo_datetime(NOW + timedelta(days=1)),
    }
    profiles = [
        profile("P1", list_suppressions=[{"list_id": "L1", "reason": "USER_SUPPRESSED", "timestamp": at(2)}, outside])
    ]
    serve_pages(api, "profiles", [profiles])
    output = run_read(config(num_workers=1), {"list_exclusions": SyncMode.incremental})

    assert [message.record.data for message in output.records] == [
        {
            "list_id": "L1",
            "profile_id": "P1",
            "email": "P1@example.com",
            "phone_number": "+15550100",
            "reason": "USER_SUPPRESSED",
            "timestamp": at(2),
        }
    ]


def test_membership_rows_name_the_list_the_profile_and_its_contact_and_nothing_more(api):
    member = ada(joined=at(3))
    serve_pages(api, "lists", [[resource("lists", "L1", {"name": "VIP", "updated": at(1)})]])
    api.get("https://a.klaviyo.com/api/lists/L1/profiles", json={"data": [member], "links": {"self": "x"}})
    api.get("https://a.klaviyo.com/api/lists/probe/profiles", status_code=404, json=error_body(404))  # no such list
    output = run_read(config(), {"list_memberships": SyncMode.incremental})

    (row,) = [message.record.data for message in output.records]
    assert row == {"list_id": "L1", "profile_id": "P1", "joined_group_at": at(3), "email": "ada@example.com"}
    (members_request,) = [call for call in api.request_history if call.path == "/api/lists/l1/profiles"]
    assert members_request.qs["fields[profile]"] == ["email,phone_number,joined_group_at"]
    assert members_request.qs["sort"] == ["joined_group_at"]


@pytest.mark.parametrize("refusal", [400, 404])
def test_a_saved_next_page_link_klaviyo_no_longer_takes_reads_the_list_again_from_its_value(api, refusal):
    """Klaviyo's page cursors are opaque and may expire: a sync resuming inside a list at its saved link reads the
    list again from the list's value (inclusive) when Klaviyo refuses the link, with a warning; nothing is lost."""
    member = ada(joined=at(3))
    serve_pages(api, "lists", [[resource("lists", "L1", {"name": "VIP", "updated": at(1)})]])
    api.get("https://a.klaviyo.com/api/lists/L1/profiles", json={"data": [member], "links": {"self": "x"}})
    stale = "api/lists/L1/profiles?page%5Bcursor%5D=stale"
    api.get(f"https://a.klaviyo.com/{stale}", status_code=refusal, json=error_body(refusal, "Invalid page cursor"))
    api.get("https://a.klaviyo.com/api/lists/probe/profiles", status_code=404, json=error_body(404))
    entry = {"partition": {"list_id": "L1"}, "cursor": {"joined_group_at": at(5)}, "next_page": stale}
    state = StateBuilder().with_stream_state("list_memberships", {"states": [entry]}).build()
    output = run_read(config(), {"list_memberships": SyncMode.incremental}, state=state)

    assert [message.record.data["profile_id"] for message in output.records] == ["P1"]
    fresh = [call for call in api.request_history if call.path == "/api/lists/l1/profiles" and "filter" in call.qs]
    assert fresh and "greater-or-equal(joined_group_at," in fresh[0].qs["filter"][0]
    assert any("did not take the saved link" in log.log.message for log in output.logs)
