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

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration_tests.conftest import NOW
from integration_tests.connector_cli import CONNECTOR, configured_catalog, parse_lines, run_connector
from integration_tests.expectations import all_history_config, all_history_ids
from integration_tests.klaviyo_sim import Dataset, Faults, Simulator, Sizes

STREAMS = ("events", "profiles")


def run_until(folder, config, catalog, state, kill_after):
    """One read; killed after `kill_after` records (None: to the end). (committed ids, last states, finished)."""
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
    returncode = process.wait()
    return committed, states, returncode == 0


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
    kills=st.lists(st.integers(1, 5_000), min_size=1, max_size=4),
)
def test_killed_reads_resumed_from_their_last_state_deliver_every_record(
    tmp_path_factory, reliability_report, seed, events, event_days, profiles, workers, kills
):
    sizes = Sizes(
        campaigns=1, templates=1, lists=1, segments=1, flows=1, profiles=profiles, events=events, event_days=event_days
    )
    folder = tmp_path_factory.mktemp("kill")
    with Simulator(Dataset(seed=seed, now=NOW, sizes=sizes), Faults()).run_in_thread() as sim:
        config = all_history_config(sim.dataset, sim.url, num_workers=workers)
        discovered = run_connector("discover", folder, config=config).of_type("CATALOG")[0]["catalog"]
        catalog = configured_catalog(discovered, STREAMS)
        delivered, state, finished, runs = defaultdict(set), {}, False, 0
        for kill_after in [*kills, None]:
            committed, states, finished = run_until(folder, config, catalog, list(state.values()), kill_after)
            runs += 1
            for stream, ids in committed.items():
                delivered[stream] |= ids
            state.update(states)
            if finished:
                break
        expected = all_history_ids(sim.dataset)

    missing = {stream: len(expected[stream] - delivered[stream]) for stream in STREAMS}
    reliability_report(
        {
            "scenario": (
                f"SIGKILL after {kills} records; {workers} workers, {events} events over {event_days} days, "
                f"{profiles} profiles"
            ),
            "expected": "resumed runs deliver every record",
            "result": f"finished after {runs} runs" if finished else "did not finish",
            "records_expected": sum(len(expected[stream]) for stream in STREAMS),
            "records_emitted": sum(len(delivered[stream]) for stream in STREAMS),
            "missing": sum(missing.values()),
            "duplicates": None,
        }
    )
    assert finished, "the last run, not killed, completes"
    assert missing == {"events": 0, "profiles": 0}
