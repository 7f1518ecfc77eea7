"""SIGKILL at any point of an incremental events and profiles read, resumed from the last STATE: nothing lost.

Hypothesis draws the data (size, span, density of the simulator) and the kill points. Each run is
the CLI, killed once it has printed a drawn number of records; the next run starts from the last
STATE each stream printed. A record counts as delivered only when a STATE of its stream followed it,
as a destination commits them, so the test also proves state never runs ahead of the records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import defaultdict
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration_tests.conftest import NOW
from integration_tests.connector_cli import (
    CONNECTOR,
    configured_catalog,
    discovered_catalog,
    parse_lines,
    run_connector,
)
from integration_tests.expectations import all_history_config, all_history_ids
from integration_tests.klaviyo_sim import Dataset, Faults, Simulator, Sizes
from source_klaviyo.cursor import parse_klaviyo_datetime

STREAMS = ("events", "profiles")


def run_until(folder, config, catalog, state, kill_after):
    """One read, SIGKILLed once it has printed `kill_after` records (None: not killed).

    (committed ids per stream, last state per stream, exit code: -SIGKILL when the kill landed).
    """
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "catalog.json").write_text(json.dumps(catalog))
    (folder / "state.json").write_text(json.dumps(state))
    command = [CONNECTOR, "read", "--config", str(folder / "config.json"), "--catalog", str(folder / "catalog.json")]
    process = subprocess.Popen([*command, "--state", str(folder / "state.json")], stdout=subprocess.PIPE, text=True)
    pending, committed, states, seen = defaultdict(set), defaultdict(set), {}, 0
    # Everything printed before the kill still reaches us (and a destination) through the pipe.
    for message in parse_lines(process.stdout):
        if message["type"] == "RECORD":
            pending[message["record"]["stream"]].add(message["record"]["data"]["id"])
            seen += 1
            if seen == kill_after:
                os.kill(process.pid, signal.SIGKILL)
        elif message["type"] == "STATE":
            stream = message["state"]["stream"]["stream_descriptor"]["name"]
            committed[stream] |= pending.pop(stream, set())
            states[stream] = {"type": "STREAM", "stream": message["state"]["stream"]}
    process.stdout.close()
    return committed, states, process.wait()


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(1, 10_000),
    events=st.integers(200, 6_000),
    event_days=st.integers(1, 90),
    profiles=st.integers(20, 1_500),
    workers=st.sampled_from([1, 3, 10]),
    kills=st.lists(st.floats(0.0, 0.9), min_size=1, max_size=4),
)
def test_killed_reads_resumed_from_their_last_state_deliver_every_record(
    tmp_path_factory, reliability_report, seed, events, event_days, profiles, workers, kills
):
    """Kill points are shares of the records to deliver: each run is killed that far into what it prints."""
    sizes = Sizes(
        campaigns=1, templates=1, lists=1, segments=1, flows=1, profiles=profiles, events=events, event_days=event_days
    )
    folder = tmp_path_factory.mktemp("kill")
    with Simulator(Dataset(seed=seed, now=NOW, sizes=sizes), Faults()).run_in_thread() as sim:
        expected = all_history_ids(sim.dataset)
        total = sum(len(expected[stream]) for stream in STREAMS)
        config = all_history_config(sim.dataset, sim.url, num_workers=workers)
        discovered = discovered_catalog(folder, config)
        catalog = configured_catalog(discovered, STREAMS)
        delivered, state, exits = defaultdict(set), {}, []
        for kill_after in [*(max(1, int(share * total)) for share in kills), None]:
            committed, states, exit_code = run_until(folder, config, catalog, list(state.values()), kill_after)
            exits.append(exit_code)
            for stream, ids in committed.items():
                delivered[stream] |= ids
            state.update(states)
            if exit_code == 0:
                break

    killed = exits.count(-signal.SIGKILL)
    missing = {stream: len(expected[stream] - delivered[stream]) for stream in STREAMS}
    reliability_report(
        {
            "scenario": (
                f"SIGKILL at {', '.join(f'{share:.0%}' for share in kills)} of the records; workers: {workers}, "
                f"{events} events over {event_days} day(s), {profiles} profiles"
            ),
            "expected": "resumed runs deliver every record",
            "result": f"{len(exits)} runs, {killed} killed, last exit {exits[-1]}",
            "records_expected": total,
            "records_emitted": sum(len(delivered[stream]) for stream in STREAMS),
            "missing": sum(missing.values()),
            "duplicates": None,
        }
    )
    assert exits[-1] == 0, "the last run, not killed, completes"
    assert set(exits[:-1]) <= {-signal.SIGKILL}, exits
    # The connector runs ahead of our reading by at most a pipe's 64 KB (about 100 records), so a kill
    # well before the end of the first run's output always lands.
    if max(1, int(kills[0] * total)) < total - 300:
        assert exits[0] == -signal.SIGKILL, exits
    assert missing == {"events": 0, "profiles": 0}


@pytest.mark.parametrize("workers", [2, 10])
def test_no_record_printed_after_a_state_is_older_than_that_state(klaviyo_sim, tmp_path, workers):
    """What a destination commits at a STATE is final: records still to come are all newer than it."""
    config = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url, num_workers=workers)
    discovered = discovered_catalog(tmp_path, config)
    run = run_connector("read", tmp_path, config=config, catalog=configured_catalog(discovered, STREAMS))
    cursors = {"events": "datetime", "profiles": "created"}
    committed: dict[str, datetime] = {}
    checked = 0
    for message in run.messages:
        if message["type"] == "STATE":
            stream = message["state"]["stream"]["stream_descriptor"]["name"]
            committed[stream] = parse_klaviyo_datetime(message["state"]["stream"]["stream_state"][cursors[stream]])
        elif message["type"] == "RECORD" and message["record"]["stream"] in committed:
            stream, data = message["record"]["stream"], message["record"]["data"]
            assert parse_klaviyo_datetime(data[cursors[stream]]) >= committed[stream], (stream, data["id"])
            checked += 1
    assert run.returncode == 0 and checked > 100, checked
