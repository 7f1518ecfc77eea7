"""The Reporting API streams end to end against the simulator: rows equal its own computation, a sync that
runs out of the day's quota goes on the next day with nothing missed or doubled, and the re-read window
replaces rows without changing their ids."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta, timezone

import pytest

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.expectations import REPORTS, expected_report, first_start, keyed, report_periods
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Faults, Simulator, Sizes
from source_klaviyo.clock import format_klaviyo_datetime

SIZES = Sizes(campaigns=40, flows=6, forms=4, segments=4, lists=2, profiles=600, events=6_000, event_days=45)
DAYS = 40  # each report's first-sync window here: one request per stream (two for values across a new year)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(Dataset(seed=13, now=NOW, sizes=SIZES), Faults()).run_in_thread() as running:
        yield running


def next_utc_midnight() -> datetime:
    """When the simulator's quota day ends: it counts UTC days by the wall clock."""
    return datetime.combine(datetime.now(timezone.utc).date() + timedelta(days=1), time(), tzinfo=timezone.utc)


def read(sim: Simulator, folder, streams, state=None, days: int = DAYS, **extra):
    config = {
        "api_key": FULL_ACCESS_KEY,
        "api_url": sim.url,
        "backfill_window_days": dict.fromkeys(streams, days),
        **extra,
    }
    catalog = configured_catalog(discovered_catalog(folder, config), streams)
    run = run_connector("read", folder, config=config, catalog=catalog, state=state, timeout=600)
    assert run.returncode == 0, run.errors()
    return run


def test_each_report_s_rows_equal_the_simulator_s_own_computation(sim, tmp_path):
    run = read(sim, tmp_path, list(REPORTS))
    for stream in REPORTS:
        want = expected_report(sim.dataset, stream, report_periods(sim.dataset, stream, first_start(sim.dataset, DAYS)))
        got = keyed(stream, run.records(stream))
        assert want, f"{stream}: the simulator has activity in the window"
        assert len(got) == len(run.records(stream)), f"{stream}: one row per grouping and date"
        assert set(got) == set(want), stream
        for key, statistics in want.items():
            assert {name: got[key].get(name) for name in statistics} == statistics, (stream, key)
        assert all(record["timezone"] == sim.dataset.sizes.timezone for record in run.records(stream))
        empty = [column for column in REPORTS[stream].groupings for row in got.values() if row.get(column) is None]
        assert not empty, f"{stream}: every declared column is filled in every row, {len(empty)} are not"


def test_a_sync_out_of_the_day_s_quota_goes_on_the_next_day_with_nothing_missed_or_doubled(sim, tmp_path):
    stream, days = "flow_series_reports", 130  # three requests of up to 60 days
    sim.daily_cap = 1
    runs, midnights = [], set()
    for _day in range(3):
        midnights.add(next_utc_midnight())
        runs.append(read(sim, tmp_path, [stream], state=runs[-1].final_states() if runs else None, days=days))
        midnights.add(next_utc_midnight())  # the simulator's day, by its clock, before and after the read
        sim.next_day()
    final = runs[-1].stream_state(stream)
    assert "unfinished_sync_end" not in final
    for run in runs[:-1]:
        (warning,) = [log["log"]["message"] for log in run.of_type("LOG") if "are left" in log["log"]["message"]]
        assert "Klaviyo's daily limit" in warning and "Daily limit of 1 requests" in warning, "the cap that stopped it"
        assert "225" not in warning
        assert any(f"resets at {format_klaviyo_datetime(midnight)}" in warning for midnight in midnights), warning
        assert run.stream_state(stream)["unfinished_sync_end"]
    rows = [record for run in runs for record in run.records(stream)]
    keys = list(keyed(stream, rows))
    assert len(keys) == len(rows), "no row is read twice"
    want = expected_report(sim.dataset, stream, report_periods(sim.dataset, stream, first_start(sim.dataset, days)))
    assert set(keys) == set(want), "nothing is missed"


def test_the_re_read_window_replaces_rows_with_klaviyo_s_revised_numbers_under_the_same_ids(sim, tmp_path):
    stream = "flow_series_reports"
    sim.dataset.delay_events(every=2, within_seconds=8 * 86_400)  # revised after the first sync
    first = read(sim, tmp_path, [stream], reporting_lookback_days=10)
    sim.dataset.reveal()
    second = read(sim, tmp_path, [stream], state=first.final_states(), reporting_lookback_days=10)

    before, after = keyed(stream, first.records(stream)), keyed(stream, second.records(stream))
    assert after and set(after) <= set(before) | set(after)
    dates = sorted({date for _, date in after})
    cutoff = datetime.fromtimestamp(sim.dataset.now, timezone.utc) - timedelta(days=11)
    assert datetime.fromisoformat(dates[0]) >= cutoff, "only the re-read window is read again"
    shared = set(before) & set(after)
    assert shared and all(before[key]["id"] == after[key]["id"] for key in shared)
    assert any(before[key]["recipients"] != after[key]["recipients"] for key in shared), "numbers were revised"
    merged = {**before, **after}  # what an append_dedup destination keeps
    want = expected_report(sim.dataset, stream, report_periods(sim.dataset, stream, first_start(sim.dataset, DAYS)))
    for key in set(want) & set(after):
        assert {name: merged[key].get(name) for name in want[key]} == want[key], key
    assert second.stream_state(stream)["quota"]["spent"] == 2, "the day's requests add up across syncs"
