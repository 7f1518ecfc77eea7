"""A connection moved here from the official Airbyte Klaviyo connector, against the simulator: its config (with the
official settings) and its per-stream states (official names, official shapes, at a point in the simulator's
history), with our catalog of the streams that hold those records here. The read accepts the settings and applies
their meaning, says how each state was taken over, and reads only what is newer than the states."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.expectations import expected_report, keyed, report_periods
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Faults, Simulator, Sizes
from integration_tests.klaviyo_sim.data import DAY

SIZES = Sizes(campaigns=12, templates=30, lists=25, segments=2, flows=4, profiles=400, events=4_000, event_days=30)
STREAMS = ["events", "templates", "profiles", "lists", "global_exclusions", "campaigns_email", "flow_series_reports"]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(Dataset(seed=21, now=NOW, sizes=SIZES), Faults()).run_in_thread() as running:
        yield running


def official(epoch: int) -> str:
    """A datetime as the official connector writes its cursors (its manifest's `%Y-%m-%dT%H:%M:%S%z`)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z")


def between(times: list[int]) -> int:
    """A moment in the middle of `times` that none of them is at, so no record sits on the state's edge."""
    middle = sorted(times)[len(times) // 2]
    return next(moment for moment in range(middle + 1, middle + 3600) if moment not in times)


def stream_state(name: str, state: dict) -> dict:
    return {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": state}}


def test_an_official_connection_reads_only_what_is_newer_than_its_states_with_its_settings_applied(sim, tmp_path):
    dataset = sim.dataset
    placed, opened = (
        next(m.id for m in dataset.metrics if m.attributes["name"] == name) for name in ("Placed Order", "Opened Email")
    )
    config = {
        "api_key": FULL_ACCESS_KEY,
        "api_url": sim.url,
        "start_date": "2020-01-01T00:00:00Z",
        "num_workers": 4,
        "disable_fetching_predictive_analytics": False,
        "lookback_window": 2,
        "event_metric_ids": opened,
        "metric_ids": f"{placed}, {opened}",
        "reporting_lookback_window": 5,
    }
    profiles, events = dataset.profiles, dataset.events
    templates_at = between([r.times["updated"] for r in dataset.collection("templates")])
    profiles_at = between(list(profiles.updated))
    lists_at = between([r.times["updated"] for r in dataset.collection("lists")])
    suppressed = [i for i in range(profiles.count) if dataset.suppression(i)]
    exclusions_at = between([dataset.suppression(i)[1] for i in suppressed])
    events_at, reports_at = NOW - 3 * DAY, NOW - 10 * DAY
    state = [
        # events as the official connector keeps it since event_metric_ids (one partition per metric), and
        # events_detailed as before: both lead to our events, which resumes from the earlier.
        stream_state(
            "events",
            {
                "use_global_cursor": False,
                "states": [{"partition": {"metric_id": opened}, "cursor": {"datetime": official(events_at + DAY)}}],
                "state": {"datetime": official(events_at + DAY)},
                "lookback_window": 0,
            },
        ),
        stream_state("events_detailed", {"datetime": official(events_at)}),
        stream_state("email_templates", {"updated": official(templates_at)}),
        stream_state("profiles", {"updated": official(profiles_at)}),
        stream_state("global_exclusions", {"updated": official(exclusions_at)}),
        stream_state(
            "lists_detailed",
            {
                "use_global_cursor": False,
                "states": [
                    {"partition": {"id": r.id, "parent_slice": {}}, "cursor": {"updated": official(r.times["updated"])}}
                    for r in dataset.collection("lists")
                    if r.times["updated"] <= lists_at
                ],
                "state": {"updated": official(lists_at + 600)},
                "lookback_window": 600,  # seconds: the official sync that wrote it took ten minutes
            },
        ),
        stream_state(
            "campaigns",
            {
                "use_global_cursor": False,
                "states": [
                    {
                        "partition": {"archived": archived, "campaign_type": kind},
                        "cursor": {"updated_at": official(NOW)},
                    }
                    for archived in ("true", "false")
                    for kind in ("email", "sms")
                ],
            },
        ),
        stream_state(
            "flow_series_reports",
            {
                "use_global_cursor": False,
                "states": [
                    {"partition": {"metric_id": placed, "parent_slice": {}}, "cursor": {"date": official(reports_at)}}
                ],
                "state": {"date": official(reports_at)},
                "lookback_window": 30,
            },
        ),
    ]
    catalog = configured_catalog(discovered_catalog(tmp_path, config), STREAMS)
    for entry in catalog["streams"]:
        if entry["stream"]["name"] == "profiles":
            entry["cursor_field"] = ["updated"]  # the official connector's profiles cursor
        if entry["stream"]["name"] == "campaigns_email":
            assert entry["sync_mode"] == "full_refresh"

    run = run_connector("read", tmp_path, config=config, catalog=catalog, state=state)

    assert run.returncode == 0, run.errors()

    def logged(level: str) -> list[str]:
        return [message["log"]["message"] for message in run.of_type("LOG") if message["log"]["level"] == level]

    info = "\n".join(logged("INFO"))
    for line in (
        "setting disable_fetching_predictive_analytics=false is read as profiles_predictive_analytics=true.",
        "setting lookback_window=2 is read as event_lookback_hours=48.",
        f'setting event_metric_ids="{opened}" is read as event_metrics=["{opened}"].',
        f'setting metric_ids="{placed}, {opened}" is read as conversion_metric="{placed}".',
        "setting reporting_lookback_window=5 is read as reporting_lookback_days=5.",
        "Stream events_detailed (the official connector's) is taken over as events",
        "Stream events: its state is not used, events resumes from the state of events_detailed, which is earlier.",
        "Stream email_templates (the official connector's) is taken over as templates",
        "Stream lists_detailed (the official connector's) is taken over as lists",
        "Stream global_exclusions (the official connector's) is taken over as global_exclusions",
        "Stream campaigns: the official connector's state is not needed, its records are in campaigns_email, "
        "campaigns_sms here",
        "Stream flow_series_reports (the official connector's) is taken over as flow_series_reports",
    ):
        assert line in info, line
    assert logged("WARN") == [
        f'The official connector\'s setting metric_ids="{placed}, {opened}": each report here counts one conversion '
        f"metric, {placed}; {opened} not."
    ]

    def ids(stream: str) -> set:
        records = run.records(stream)
        assert len(records) == len({record["id"] for record in records}), f"{stream}: no record twice"
        return {record["id"] for record in records}

    # Incremental streams: only what is newer than each state (events: less the official two days' look-back).
    first, last = events.first_at_or_after(events_at - 2 * DAY), events.first_at_or_after(NOW)
    assert ids("events") == {
        events.record(i).id for i in range(first, last) if events.metric_ids[events.metric_of[i]] == opened
    }
    assert ids("templates") == {r.id for r in dataset.collection("templates") if r.times["updated"] >= templates_at}
    assert ids("lists") == {r.id for r in dataset.collection("lists") if r.times["updated"] >= lists_at}
    assert ids("profiles") == {profiles.ids[i] for i in range(profiles.count) if profiles.updated[i] >= profiles_at}
    assert ids("global_exclusions") == {
        profiles.ids[i] for i in suppressed if dataset.suppression(i)[1] >= exclusions_at
    }
    assert all("predictive_analytics" in record for record in run.records("profiles"))
    resumed = datetime.fromtimestamp(reports_at, timezone.utc) - timedelta(seconds=30) - timedelta(days=5)
    want = expected_report(dataset, "flow_series_reports", report_periods(dataset, "flow_series_reports", resumed))
    assert set(keyed("flow_series_reports", run.records("flow_series_reports"))) == set(want)
    assert {record["conversion_metric_id"] for record in run.records("flow_series_reports")} == {placed}
    # A full-refresh stream reads in full.
    email = {c.id for c in dataset.collection("campaigns") if c.fields["messages.channel"] == "email"}
    assert ids("campaigns_email") == email
    for stream in ("events", "templates", "lists", "profiles", "global_exclusions"):
        assert run.records(stream), f"{stream}: the state lies inside the simulator's history, with records after it"
