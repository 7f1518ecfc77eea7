"""The streams beyond the original reports, end to end against the simulator: per-parent streams (campaign
messages, flow actions and messages, memberships, coupon codes), exclusions, tag links, event attribution
and archived flows; what they read, what a second sync reads, and how a killed or disturbed sync ends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from integration_tests.conftest import NOW, WALL_CLOCK
from integration_tests.connector_cli import (
    configured_catalog,
    discovered_catalog,
    run_connector,
)
from integration_tests.expectations import all_history_config, all_history_ids, key
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Faults, Simulator, Sizes, key_without
from integration_tests.klaviyo_sim.data import DAY, iso
from source_klaviyo.clock import NOW_VARIABLE

SIZES = Sizes(
    campaigns=30, templates=4, lists=8, segments=6, flows=6, profiles=1_200, events=6_000, event_days=30, coupons=5
)
# Incremental streams new here, with their cursor field and parent field (None: not per parent).
INCREMENTAL = {
    "flow_actions": ("updated", "flow_id"),
    "flow_messages": ("updated", "flow_action_id"),
    "list_memberships": ("joined_group_at", "list_id"),
    "segment_memberships": ("joined_group_at", "segment_id"),
    "global_exclusions": ("timestamp", None),
    "list_exclusions": ("timestamp", None),
    "forms": ("updated_at", None),
}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(Dataset(seed=8, now=NOW, sizes=SIZES), Faults()).run_in_thread() as running:
        yield running


def settings(sim: Simulator, **extra) -> dict:
    return {"api_key": FULL_ACCESS_KEY, "api_url": sim.url, **extra}


def read(sim: Simulator, folder, streams, state=None, **extra):
    config = settings(sim, **extra)
    catalog = configured_catalog(discovered_catalog(folder, config), streams)
    run = run_connector("read", folder, config=config, catalog=catalog, state=state, timeout=900)
    assert run.returncode == 0, run.errors()
    return run


def test_archived_flows_are_read_with_the_others(sim, tmp_path):
    flows = sim.dataset.collection("flows")
    assert any(flow.attributes["archived"] for flow in flows), "the simulator archives some flows"
    run = read(sim, tmp_path, ["flows"])
    assert {record["id"] for record in run.records()} == {flow.id for flow in flows}


def test_campaigns_flows_lists_and_segments_carry_their_tag_ids(sim, tmp_path):
    streams = {"campaigns_email": "campaigns", "flows": "flows", "lists": "lists", "segments": "segments"}
    run = read(sim, tmp_path, list(streams), backfill_window_days={"lists": 0, "segments": 0})
    tagged = 0
    for stream, collection in streams.items():
        tags = {record.id: sorted(record.relationships["tags"]) for record in sim.dataset.collection(collection)}
        for record in run.records(stream):
            assert sorted(record.get("tag_ids", [])) == tags[record["id"]], (stream, record["id"])
            tagged += bool(tags[record["id"]])
    assert tagged, "some records carry tags"


def test_events_carry_the_campaign_flow_and_message_klaviyo_attributes_them_to(sim, tmp_path):
    run = read(sim, tmp_path, ["events"])
    events = sim.dataset.events
    index = {events.record(i).id: i for i in range(events.first_at_or_after(NOW - 30 * DAY), events.count)}
    fields = {"campaign": "campaign_id", "campaign-message": "campaign_message_id", "flow": "flow_id"}
    fields["flow-message"] = "flow_message_id"
    attributed = 0
    for record in run.records():
        expected = events.attribution(index[record["id"]]) or {}
        assert {field: record.get(field) for field in fields.values()} == {
            field: expected.get(relationship) for relationship, field in fields.items()
        }
        attributed += bool(expected)
    assert attributed > 100, "many events are attributed to a campaign or a flow"


def test_membership_and_exclusion_rows_carry_the_parent_the_profile_and_its_contact(sim, tmp_path):
    dataset, profiles = sim.dataset, sim.dataset.profiles
    run = read(sim, tmp_path, ["list_memberships", "global_exclusions", "list_exclusions"])
    by_id = {profiles.ids[i]: i for i in range(profiles.count)}
    for row in run.records("list_memberships"):
        index = by_id[row["profile_id"]]
        joined = dict(dataset.members("lists", row["list_id"]))[index]
        contact = dataset.profiles.record(index).attributes
        assert row == {
            "list_id": row["list_id"],
            "profile_id": row["profile_id"],
            "joined_group_at": iso(joined),
            "email": contact["email"],
            "phone_number": contact["phone_number"],
        }
    for row in run.records("global_exclusions"):
        reason, at = dataset.suppression(by_id[row["id"]])
        assert (row["reason"], row["timestamp"], row["email"]) == (
            reason,
            iso(at),
            dataset.profiles.record(by_id[row["id"]]).attributes["email"],
        )
    for row in run.records("list_exclusions"):
        suppressions = {
            list_id: (reason, iso(at)) for list_id, reason, at in dataset.list_suppressions(by_id[row["profile_id"]])
        }
        assert (row["reason"], row["timestamp"]) == suppressions[row["list_id"]]
    expected = all_history_ids(dataset)
    for stream in ("list_memberships", "global_exclusions", "list_exclusions"):
        assert {key(stream, row) for row in run.records(stream)} == expected[stream], stream


@pytest.mark.parametrize("stream", INCREMENTAL)
def test_a_second_incremental_sync_reads_nothing_older_than_what_the_first_left_off_at(sim, tmp_path, stream):
    """Changes of the last 30 days show up between the two syncs. The second sync reads each parent (or the
    stream) from its newest record on, inclusive: it catches every change and reads again only that record (a
    per-parent stream not even that: it leaves out the children it delivered at that value)."""
    cursor, parent = INCREMENTAL[stream]
    sim.dataset.hold_back(30 * DAY)
    first = read(sim, tmp_path, [stream])
    assert first.records(), "the first sync reads the older part"
    sim.dataset.reveal()
    second = read(sim, tmp_path, [stream], state=first.final_states())

    def group(record):
        return record[parent] if parent else ""

    newest: dict[str, str] = {}
    for record in first.records():
        newest[group(record)] = max(newest.get(group(record), ""), record[cursor])
    seen = {key(stream, record) for record in first.records()}
    assert second.records(), "the changes of the last 30 days are read"
    for record in second.records():
        assert record[cursor] >= newest.get(group(record), ""), ("older than the state", record)
        if key(stream, record) in seen:
            assert not parent, ("a per-parent stream sent a child again", record)
            assert record[cursor] == newest[group(record)], ("read again, yet not the newest", record)
    everything = seen | {key(stream, record) for record in second.records()}
    assert everything == all_history_ids(sim.dataset)[stream], "nothing is missed"


def test_flow_messages_are_read_in_full_when_the_flows_listing_carries_no_linkage_to_their_actions(sim, tmp_path):
    """A server may answer include=flow-actions without the linkage: each flow's actions then come from its own
    actions endpoint, so no message is missed."""
    sim.faults.linkage_omitted = True
    run = read(sim, tmp_path, ["flow_messages"])
    assert {key("flow_messages", row) for row in run.records()} == all_history_ids(sim.dataset)["flow_messages"]
    assert any(path.endswith("/flow-actions") for _, path, _, _ in sim.log), "the actions were asked for"


def test_an_unchanged_second_sync_of_the_per_parent_streams_prints_nothing_it_printed_before(sim, tmp_path):
    streams = [stream for stream, (_, parent) in INCREMENTAL.items() if parent]
    first = read(sim, tmp_path, streams)
    second = read(sim, tmp_path, streams, state=first.final_states())
    for stream in streams:
        assert first.records(stream), f"{stream} has data"
        again = {key(stream, row) for row in second.records(stream)} & {
            key(stream, row) for row in first.records(stream)
        }
        assert not again, f"{stream} sent {len(again)} rows again"


def test_a_parent_deleted_between_two_pages_ends_that_parent_with_a_warning_not_the_sync(sim, tmp_path):
    sim.faults.latency_ms = 300  # the next page is asked for after the deletion lands
    doomed = sim.dataset.collection("lists")[0]
    members = len(sim.dataset.members("lists", doomed.id))
    assert members > 100, "the list has more than one page of members"
    config = settings(sim, num_workers=1)
    catalog = configured_catalog(discovered_catalog(tmp_path, config), ["list_memberships"])
    run = run_connector(
        "read",
        tmp_path,
        config=config,
        catalog=catalog,
        after_records=(1, lambda: sim.dataset.delete("lists", doomed.id)),
    )

    assert run.returncode == 0, run.errors()
    rows = Counter(record["list_id"] for record in run.records())
    assert 0 < rows[doomed.id] < members, "the pages read before the deletion are kept, the rest skipped"
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]
    assert any(doomed.id in warning and "no longer exists" in warning for warning in warnings), warnings
    others = {
        (kept.id, sim.dataset.profiles.ids[i])
        for kept in sim.dataset.collection("lists")
        for i, _ in sim.dataset.members("lists", kept.id)
    }
    assert {key("list_memberships", r) for r in run.records() if r["list_id"] != doomed.id} == others


def test_per_parent_reads_end_at_the_commands_now_as_windowed_reads_do(sim, tmp_path):
    """With the connector's clock pinned 60 days before the data's end, no membership joined and no flow action
    updated after it is read: one `now` bounds every read."""
    pinned = NOW - 60 * DAY
    config = settings(sim)
    catalog = configured_catalog(discovered_catalog(tmp_path, config), ["list_memberships", "flow_actions"])
    environment = {**WALL_CLOCK, NOW_VARIABLE: iso(pinned).replace("+00:00", ".25Z")}
    run = run_connector("read", tmp_path, config=config, catalog=catalog, env=environment)
    assert run.returncode == 0, run.errors()

    members = {
        (parent.id, sim.dataset.profiles.ids[index])
        for parent in sim.dataset.collection("lists")
        for index, joined in sim.dataset.members("lists", parent.id)
        if joined < pinned
    }
    assert {key("list_memberships", record) for record in run.records("list_memberships")} == members
    assert members, "some members joined before the pinned now"
    assert all(record["updated"] < iso(pinned) for record in run.records("flow_actions"))


def test_a_key_without_some_scopes_reads_what_it_can_in_full_then_ends_with_one_error_naming_them(sim, tmp_path):
    """Without `tags:read`: campaigns and lists are read whole but for their tag ids (one warning says so); the
    tags stream, which needs that scope itself, is not read, and the sync ends with one config error naming it."""
    config = all_history_config(sim.dataset, sim.url)
    catalog = configured_catalog(discovered_catalog(tmp_path, config), ["campaigns_email", "lists", "tags"])
    run = run_connector("read", tmp_path, config={**config, "api_key": key_without("tags:read")}, catalog=catalog)

    expected = all_history_ids(sim.dataset)
    for stream in ("campaigns_email", "lists"):
        assert {key(stream, row) for row in run.records(stream)} == expected[stream], stream
        assert not any("tag_ids" in row for row in run.records(stream)), stream
    assert not run.records("tags")
    (error,) = run.errors()
    assert run.returncode == 1 and error["failure_type"] == "config_error"
    assert "tags needs `tags:read`" in error["message"] and "lists" not in error["message"]
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if "lacks `tags:read`" in m["log"]["message"]]
    assert len(warnings) == 1 and "lists without tag_ids" in warnings[0]
