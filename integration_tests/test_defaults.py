"""What a new Airbyte connection does by default: only a key, discover, every stream selected in its default
mode, read; against the simulator at Klaviyo's own rate limits."""

from __future__ import annotations

import pytest

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.expectations import default_window_ids, key
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Faults, Simulator, Sizes
from source_klaviyo.state import NEXT_PAGE, UNFINISHED

SIZES = Sizes(campaigns=24, templates=20, lists=10, segments=10, flows=8, profiles=1_500, events=8_000, event_days=60)


@pytest.mark.realtime
def test_selecting_every_discovered_stream_with_only_a_key_syncs_each_streams_window_exactly(tmp_path):
    with Simulator(Dataset(seed=21, now=NOW, sizes=SIZES), Faults(rate_limit_scale=1.0)).run_in_thread() as sim:
        config = {"api_key": FULL_ACCESS_KEY, "api_url": sim.url}
        discovered = discovered_catalog(tmp_path, config)
        # As the UI selects them: every stream, incremental (append + dedup) where it can be, else full refresh.
        catalog = configured_catalog(discovered)
        run = run_connector("read", tmp_path, config=config, catalog=catalog, timeout=900)
        expected = default_window_ids(sim.dataset)

    assert run.returncode == 0, run.errors()
    selected = {entry["stream"]["name"] for entry in catalog["streams"]}
    assert selected == set(expected), "discover offers exactly the streams a key alone can run"
    for stream in sorted(selected):
        keys = [key(stream, record) for record in run.records(stream)]
        assert len(keys) == len(set(keys)), f"{stream}: duplicates"
        assert set(keys) == expected[stream], stream
        assert keys, f"{stream}: the simulator holds data in its window"
    assert sim.stats["status_429"] == 0, "the budget kept every endpoint under Klaviyo's limits"
    resumable = {stream["name"] for stream in discovered["streams"] if stream.get("is_resumable")}
    resuming = {
        message["state"]["stream"]["stream_descriptor"]["name"]
        for message in run.of_type("STATE")
        if resume_progress(message["state"]["stream"]["stream_state"])
    }
    assert resuming and resuming <= resumable, f"{resuming - resumable} print resume STATEs, yet say they cannot resume"


def resume_progress(stream_state: dict) -> bool:
    """Whether a STATE holds the progress of a sync under way, from which an interrupted one resumes."""
    return UNFINISHED in stream_state or any(NEXT_PAGE in entry for entry in stream_state.get("states", []))
