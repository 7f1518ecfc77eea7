"""Events and profiles end to end: adaptive windows, exact edges, resume, lookback, metric filter, cursor choice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from jsonschema import Draft7Validator

from integration_tests.conftest import NOW, WALL_CLOCK
from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.expectations import utc
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Faults, Simulator, Sizes
from integration_tests.klaviyo_sim.data import DAY, iso
from integration_tests.klaviyo_sim.query import literal
from klaviyo_spec.contract import parse_filter
from source_klaviyo.state import UNFINISHED
from source_klaviyo.windows import PAGES_PER_WINDOW

EVENTS = Sizes(
    campaigns=2,
    templates=2,
    lists=2,
    segments=2,
    flows=2,
    profiles=3_000,
    events=60_000,
    event_days=40,
    history_days=900,
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(Dataset(seed=5, now=NOW, sizes=EVENTS), Faults())
    with simulator.run_in_thread() as running:
        yield running


def settings(sim: Simulator, **extra) -> dict:
    return {"api_key": FULL_ACCESS_KEY, "api_url": sim.url, **extra}


def catalog(sim: Simulator, folder, streams, cursor_field=None, **extra) -> dict:
    discovered = discovered_catalog(folder, settings(sim, **extra))
    configured = configured_catalog(discovered, streams)
    if cursor_field:
        for entry in configured["streams"]:
            entry["cursor_field"] = [cursor_field]
    return configured


def event_ids(dataset: Dataset, start: int, end: int) -> set[str]:
    """Ids of the visible events with start <= datetime < end."""
    events = dataset.events
    first, last = events.first_at_or_after(start), events.first_at_or_after(end)
    return {events.record(i).id for i in range(first, last) if i not in dataset.late_events}


def window_of(query: dict) -> tuple[int, int]:
    bounds = {
        operator: literal(value) for operator, field, value in parse_filter(query["filter"]) if field == "datetime"
    }
    return bounds["greater-or-equal"], bounds["less-than"]


def read_events(sim, folder, **extra):
    run = run_connector("read", folder, config=settings(sim, **extra), catalog=catalog(sim, folder, ["events"]))
    assert run.returncode == 0, run.errors()
    return run


def test_a_first_events_sync_reads_exactly_the_last_30_days(sim, tmp_path):
    run = read_events(sim, tmp_path)

    ids = [record["id"] for record in run.records("events")]
    assert len(ids) == len(set(ids)), "no event twice"
    assert set(ids) == event_ids(sim.dataset, NOW - 30 * DAY, NOW)
    schema = catalog(sim, tmp_path, ["events"])["streams"][0]["stream"]["json_schema"]
    names = {metric.id: metric.attributes["name"] for metric in sim.dataset.metrics}
    for record in run.records("events")[:2_000]:
        Draft7Validator(schema).validate(record)
        assert record["metric_name"] == names[record["metric_id"]]
    newest = max(r["datetime"] for r in run.records("events")).replace("+00:00", "Z")
    assert run.stream_state("events") == {
        "state_type": "date-range",
        "slices": [{"start": utc(NOW - 30 * DAY), "end": utc(NOW), "most_recent_cursor_value": newest}],
    }


def test_one_worker_and_ten_read_the_same_events(sim, tmp_path):
    start = iso(NOW - 25 * DAY).replace("+00:00", "Z")  # the same first moment for both reads, whatever their clocks
    alone = read_events(sim, tmp_path, num_workers=1, start_date=start)
    together = read_events(sim, tmp_path, num_workers=10, start_date=start)
    assert sorted(r["id"] for r in alone.records()) == sorted(r["id"] for r in together.records())


def test_dense_periods_split_into_more_windows_and_empty_windows_cost_one_request(sim, tmp_path):
    read_events(sim, tmp_path)
    events = sim.dataset.events
    requests_per_window = Counter(
        window_of(query) for _, path, query, _ in sim.log if path == "/api/events" and "filter" in query
    )

    busy = [window for window in requests_per_window if events.busy[0] <= window[0] < events.busy[1]]
    first_cut_per_day = DAY / (30 * DAY / 20)  # 2 * workers windows over the 30 days
    assert len(busy) >= 3 > first_cut_per_day, f"the busy day ({events.busy}) was read in {len(busy)} windows"
    assert max(requests_per_window.values()) <= 2 * PAGES_PER_WINDOW, "no window is left with a long run of pages"
    quiet = [window for window in requests_per_window if events.quiet[0] <= window[0] and window[1] <= events.quiet[1]]
    assert quiet, "some windows fell in the quiet week"
    assert all(requests_per_window[window] == 1 for window in quiet), "an empty window costs one request"


def test_every_state_holds_a_gap_only_for_windows_not_yet_read(tmp_path):
    """A rest is cut only for workers that would otherwise wait, and waiting windows are read earliest
    first, so finished windows join up and every STATE stays a few slices long, however many pages
    (cutting every dense rest for 20 windows left a gap per window started: 50 slices at 200k events,
    252 at 1M, all in every STATE)."""
    sizes = Sizes(campaigns=1, templates=1, lists=1, segments=1, flows=1, profiles=500, events=200_000, event_days=28)
    with Simulator(Dataset(seed=8, now=NOW, sizes=sizes), Faults()).run_in_thread() as dense:
        run = read_events(dense, tmp_path)
        assert len(run.records()) == sizes.events
    slices = [len(message["state"]["stream"]["stream_state"]["slices"]) for message in run.of_type("STATE")]
    workers = 10  # the default num_workers; the first cut is 2 windows per worker
    assert max(slices) <= 2 * workers, (max(slices), slices)
    assert slices[-1] == 1


def test_windows_meet_exactly_where_many_events_share_a_second(tmp_path):
    crowded = Sizes(campaigns=1, templates=1, lists=1, segments=1, flows=1, profiles=50, events=120_000, event_days=1)
    simulator = Simulator(Dataset(seed=9, now=NOW, sizes=crowded), Faults())
    with simulator.run_in_thread() as sim:
        seconds = Counter(sim.dataset.events.time(i) for i in range(sim.dataset.events.count))
        assert max(seconds.values()) >= 3, "several events share a second"
        run = read_events(sim, tmp_path)
        ids = [record["id"] for record in run.records()]
        assert len(ids) == len(set(ids)) == sim.dataset.events.count
        assert set(ids) == event_ids(sim.dataset, 0, NOW + 1)
        first_pages = [query for _, path, query, _ in sim.log if path == "/api/events" and "page[cursor]" not in query]
        assert len(first_pages) > 20, "dense windows handed off their rest"


def test_custom_dates_exclude_the_start_and_include_the_end(sim, tmp_path):
    events = sim.dataset.events
    start, end = events.time(20_000), events.time(30_000)
    custom = {"start": iso(start).replace("+00:00", "Z"), "end": iso(end).replace("+00:00", "Z")}
    run = run_connector(
        "read",
        tmp_path,
        config=settings(sim, events_custom_dates=custom),
        catalog=catalog(sim, tmp_path, ["events_custom_dates"], events_custom_dates=custom),
    )

    assert run.returncode == 0, run.errors()
    ids = {record["id"] for record in run.records()}
    assert ids == event_ids(sim.dataset, start + 1, end + 1)
    assert events.record(20_000).id not in ids and events.record(30_000).id in ids


def test_a_failed_sync_resumed_from_its_last_state_loses_nothing(sim, tmp_path):
    sim.faults.break_after = 25  # the 26th request and every one after it fail
    broken = run_connector("read", tmp_path, config=settings(sim), catalog=catalog(sim, tmp_path, ["events"]))
    assert broken.returncode == 1 and broken.records(), "the sync failed part way"
    state = broken.final_states()
    assert state, "windows completed before the failure were checkpointed"

    sim.faults.break_after = 0
    resumed = run_connector(
        "read", tmp_path, config=settings(sim), catalog=catalog(sim, tmp_path, ["events"]), state=state
    )
    assert resumed.returncode == 0, resumed.errors()
    union = {r["id"] for r in broken.records()} | {r["id"] for r in resumed.records()}
    assert union == event_ids(sim.dataset, NOW - 30 * DAY, NOW)
    finished = [
        (piece["start"].replace("Z", "+00:00"), piece["end"].replace("Z", "+00:00"))
        for piece in broken.stream_state("events")["slices"]
    ]
    again = [r["datetime"] for r in resumed.records() if any(start <= r["datetime"] < end for start, end in finished)]
    assert not again, "the resumed sync reads only the windows the broken one did not finish (and no lookback)"


def test_the_lookback_picks_up_late_events_and_a_sync_never_repeats_one(sim, tmp_path):
    sim.dataset.delay_events(every=5, within_seconds=6 * 3600)
    late = {sim.dataset.events.record(i).id for i in sim.dataset.late_events}
    first = read_events(sim, tmp_path)
    assert not late & {r["id"] for r in first.records()}

    sim.dataset.reveal()
    without = run_connector(
        "read",
        tmp_path,
        config=settings(sim, event_lookback_hours=0),
        catalog=catalog(sim, tmp_path, ["events"]),
        state=first.final_states(),
    )
    with_lookback = run_connector(
        "read", tmp_path, config=settings(sim), catalog=catalog(sim, tmp_path, ["events"]), state=first.final_states()
    )

    assert not late & {r["id"] for r in without.records()}, "without lookback late events are missed"
    ids = [r["id"] for r in with_lookback.records()]
    assert late <= set(ids), "the 24-hour lookback reads them"
    assert len(ids) == len(set(ids))


def test_on_the_wall_clock_a_finished_sync_is_final_and_the_next_one_reads_the_events_that_arrived_late(tmp_path):
    """How every production sync runs: the machine's clock, whose `now` has microseconds (a whole-second pinned clock
    hid that the final state of every finished sync kept its `unfinished_sync_end`, so the next skipped its
    lookback). Some events of the last hours arrive late: dated before the first sync's end, shown after it."""
    sizes = Sizes(campaigns=1, templates=1, lists=1, segments=1, flows=1, profiles=50, events=3_000, event_days=3)
    with Simulator(Dataset(seed=11, now=int(time.time()), sizes=sizes), Faults()).run_in_thread() as wall:
        wall.dataset.delay_events(every=7, within_seconds=6 * 3600)
        late = {wall.dataset.events.record(i).id for i in wall.dataset.late_events}
        streams = catalog(wall, tmp_path, ["events"])
        first = run_connector("read", tmp_path, config=settings(wall), catalog=streams, env=WALL_CLOCK)
        assert first.returncode == 0, first.errors()
        assert UNFINISHED not in first.stream_state("events"), first.stream_state("events")
        assert late and not late & {record["id"] for record in first.records()}

        wall.dataset.reveal()
        second = run_connector(
            "read", tmp_path, config=settings(wall), catalog=streams, state=first.final_states(), env=WALL_CLOCK
        )
    assert second.returncode == 0, second.errors()
    assert late <= {record["id"] for record in second.records()}, "the late events were read"


def test_the_metric_filter_reads_only_the_chosen_metrics(sim, tmp_path):
    metrics = {metric.attributes["name"]: metric.id for metric in sim.dataset.metrics}
    run = read_events(sim, tmp_path, event_metrics=["Placed Order", metrics["Opened Email"]])

    chosen = {metrics["Placed Order"], metrics["Opened Email"]}
    assert {record["metric_id"] for record in run.records()} == chosen
    expected = {
        i
        for i in event_ids_by_index(sim.dataset, NOW - 30 * DAY, NOW)
        if sim.dataset.events.record(i).fields["metric_id"] in chosen
    }
    assert {sim.dataset.events.record(i).id for i in expected} == {record["id"] for record in run.records()}


def event_ids_by_index(dataset: Dataset, start: int, end: int) -> range:
    return range(dataset.events.first_at_or_after(start), dataset.events.first_at_or_after(end))


@pytest.mark.parametrize("cursor", ["created", "updated"])
def test_profiles_read_the_two_year_window_of_the_chosen_cursor(sim, tmp_path, cursor):
    run = run_connector(
        "read", tmp_path, config=settings(sim), catalog=catalog(sim, tmp_path, ["profiles"], cursor_field=cursor)
    )

    assert run.returncode == 0, run.errors()
    profiles = sim.dataset.profiles
    values = profiles.created if cursor == "created" else profiles.updated
    expected = {profiles.ids[i] for i in range(profiles.count) if values[i] >= NOW - 730 * DAY}
    ids = [record["id"] for record in run.records()]
    assert len(ids) == len(set(ids)) and set(ids) == expected
    newest = max(record[cursor] for record in run.records()).replace("+00:00", "Z")
    assert run.stream_state("profiles")["slices"] == [
        {"start": utc(NOW - 730 * DAY), "end": utc(NOW), "most_recent_cursor_value": newest}
    ]
    assert all(
        query.get("sort") == cursor for _, path, query, _ in sim.log if path == "/api/profiles" and "filter" in query
    )


def test_a_sync_completes_when_another_client_uses_part_of_the_quota(sim, tmp_path):
    # Klaviyo's events limits scaled to 10/s and 105/min, half of each window taken by another
    # client: the connector's budget (sized for the full limits) meets 429s and waits them out. (At 17/s a
    # read that happened to send fewer than 9 calls in every second met none: 1 run in 3.)
    sim.faults.update({"rate_limit_scale": 0.03, "competing_share": 0.5})
    run = read_events(sim, tmp_path, backfill_window_days={"events": 3})

    assert sim.stats["throttled"] > 0, "the other client's share made Klaviyo throttle us"
    assert {r["id"] for r in run.records()} == event_ids(sim.dataset, NOW - 3 * DAY, NOW)
