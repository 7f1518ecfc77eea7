"""`rate_limit_share`: a sync keeps to its share of each of Klaviyo's per-account windows, against a simulator where
another client of the account (one of the store's apps) uses the rest of every window.

The simulator's windows are Klaviyo's at SCALE, so that a small account fills them in seconds, and the connector is
told those limits (scaled_connector.py). The other client spreads its half of each window across it; a call of
ours beyond our half crowds out one of its calls (`competitor_429`, see klaviyo_sim's RateLimiter)."""

from __future__ import annotations

import sys
from collections import Counter

import pytest

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.expectations import all_history_config, all_history_ids, key
from integration_tests.klaviyo_sim import Dataset, Faults, Simulator, Sizes

# The profiles and member lists' 75 calls a second become 30, 15 of them the other client's: a sync at the whole
# of the limits takes up to 27 a second. Accounts (15 a minute, read twice for the report's timezone) keep 6.
SCALE = 0.4
OTHER_CLIENT = 0.5
SIZES = Sizes(lists=4, segments=2, profiles=5_000, events=3_000, event_days=30, member_share=0.25)
STREAMS = ("events", "profiles", "lists", "list_memberships", "segment_series_reports")


def sync_beside_the_other_client(folder, share: float) -> tuple[Counter[str], dict[str, set]]:
    """The simulator's answers to a sync of STREAMS at `share` (what it counted during the read: statuses,
    `competitor_429`), and the keys the sync read of each stream, next to the keys expected."""
    with Simulator(Dataset(seed=31, now=NOW, sizes=SIZES), Faults(rate_limit_scale=0)).run_in_thread() as sim:
        config = all_history_config(sim.dataset, sim.url, rate_limit_share=share)
        catalog = configured_catalog(discovered_catalog(folder, config), STREAMS)
        sim.faults.update({"rate_limit_scale": SCALE, "competing_share": OTHER_CLIENT})
        before = sim.stats.copy()
        program = (sys.executable, "-m", "integration_tests.scaled_connector", str(SCALE))
        run = run_connector("read", folder, config=config, catalog=catalog, program=program, timeout=600)
        counted = sim.stats - before
        expected = all_history_ids(sim.dataset)
    assert run.returncode == 0, run.errors()
    read = {stream: [key(stream, record) for record in run.records(stream)] for stream in STREAMS}
    for stream, keys in read.items():
        assert len(keys) == len(set(keys)) and set(keys) == expected[stream], stream
    return counted, read


@pytest.mark.realtime  # counts calls in the simulator's windows of a second: a starved core shifts them
def test_at_half_the_limits_a_sync_beside_a_client_using_the_other_half_gets_no_429_and_causes_none(tmp_path):
    counted, read = sync_beside_the_other_client(tmp_path, 0.5)
    assert all(read.values()), "every stream read records"
    assert counted["status_429"] == 0, "the connector kept to its half of every window"
    assert counted["competitor_429"] == 0, "the other client found its half of every window free"


@pytest.mark.realtime
def test_at_the_whole_limits_the_same_sync_crowds_the_other_client_out_of_its_half(tmp_path):
    counted, _ = sync_beside_the_other_client(tmp_path, 1.0)
    assert counted["competitor_429"] > 0, "the connector took calls from the other client's half of some window"
