"""Faults on every stream: the sync completes with every record once, or ends in a clear error in bounded time.

Each scenario reads every stream (all history) from a simulator that misbehaves as named, and compares
what was emitted with the simulator's data. Faults start before the first request, or are switched on
in the middle of the read, at a request drawn at random. Rows go to docs/RELIABILITY.md
via scripts/reliability.py.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.expectations import all_history_config, all_history_ids, key
from integration_tests.klaviyo_sim import Dataset, Faults, Simulator, Sizes

# Few flows: their endpoints allow 60 requests a minute, a handful once the scenarios scale the limits down.
SIZES = Sizes(campaigns=20, templates=15, lists=12, segments=12, flows=3, profiles=400, events=4_000, event_days=40)
SCENARIOS = [
    ("no faults", {}, {}),
    ("server errors: 20% of requests answered 500/502/503/504", {"error_rate": 0.2}, {}),
    ("connection resets: 10% of requests", {"reset_rate": 0.1}, {}),
    ("truncated JSON: 10% of 200 bodies cut in half", {"truncate_rate": 0.1}, {}),
    (
        "slow answers: 10% take 3 s, read timeout 1 s",
        {"slow_rate": 0.1, "slow_seconds": 3},
        {"request_timeout_seconds": 1},
    ),
    ("429 storm: 30% of requests throttled, Retry-After 1 s", {"throttle_rate": 0.3}, {}),
    (
        "two windows: Klaviyo's limits at 40%, another client using half of each window",
        {"rate_limit_scale": 0.4, "competing_share": 0.5},
        {},
    ),
    (
        "all at once: 5% errors, resets, truncations, slow answers and 429s",
        {
            "error_rate": 0.05,
            "reset_rate": 0.05,
            "truncate_rate": 0.05,
            "slow_rate": 0.05,
            "slow_seconds": 3,
            "throttle_rate": 0.05,
        },
        {"request_timeout_seconds": 1},
    ),
]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(Dataset(seed=11, now=NOW, sizes=SIZES), Faults()).run_in_thread() as running:
        yield running


def read_everything(sim: Simulator, folder, streams=None, switch=None, **extra):
    """A read of `streams` (every stream by default) after discover, and the request from which on
    `switch=(faults, after)` switched `faults` on during it (see mid_read; None without a switch)."""
    config = all_history_config(sim.dataset, sim.url, **extra)
    discovered = discovered_catalog(folder, config)
    catalog = configured_catalog(discovered, streams)
    at = mid_read(sim, *switch) if switch else None
    return run_connector("read", folder, config=config, catalog=catalog, timeout=900), at


def mid_read(sim: Simulator, faults: dict, after: range) -> int:
    """Switch `faults` on at a request of the read drawn from `after` (counted from now): past the access
    probes, while pages are still being read. Returns the request number."""
    at = sim.stats["requests"] + random.choice(after)
    sim.switch_faults_at(at, faults)
    return at


CASES = [
    (*scenario, when)
    for scenario in SCENARIOS
    for when in ("from the start", "mid-read")
    if scenario[1] or when != "mid-read"
]


@pytest.mark.parametrize(
    "scenario, faults, extra, when", CASES, ids=[f"{name.split(':')[0]}, {when}" for name, _, _, when in CASES]
)
def test_a_sync_under_faults_completes_with_every_record_once(
    sim, tmp_path, reliability_report, scenario, faults, extra, when
):
    aggregates = read_everything(sim, tmp_path, ["metric_aggregates"])[0].records() if faults else None
    baseline = {row["id"] for row in aggregates} if aggregates is not None else None
    if when == "from the start":
        sim.faults.update(faults)
        run, _ = read_everything(sim, tmp_path, **extra)
    else:  # every stream's probe first (about 30 requests), then about 240 requests of pages
        run, at = read_everything(sim, tmp_path, switch=(faults, range(40, 120)), **extra)
        scenario = f"{scenario}, switched on at request {at}"

    expected = all_history_ids(sim.dataset)
    emitted = Counter((r["stream"], key(r["stream"], r["data"])) for r in (m["record"] for m in run.of_type("RECORD")))
    missing = sum(len(ids - {i for s, i in emitted if s == stream}) for stream, ids in expected.items())
    duplicates = sum(count - 1 for count in emitted.values())
    reliability_report(
        {
            "scenario": scenario,
            "expected": "completes; every record once",
            "result": "completed" if run.returncode == 0 else f"failed: {[e['message'] for e in run.errors()][:1]}",
            "records_expected": sum(map(len, expected.values())),
            "records_emitted": sum(1 for stream, _ in emitted if stream != "metric_aggregates"),
            "missing": missing,
            "duplicates": duplicates,
            "faults_seen": {
                k: v
                for k, v in sim.stats.items()
                if k in ("errors_injected", "resets", "truncated", "slow", "throttled")
            },
        }
    )
    assert run.returncode == 0, run.errors()
    for stream, ids in expected.items():
        assert {i for s, i in emitted if s == stream} == ids, stream
    assert duplicates == 0
    if baseline is not None:
        assert {i for s, i in emitted if s == "metric_aggregates"} == baseline
    for kind, share in (("errors_injected", "error_rate"), ("resets", "reset_rate"), ("throttled", "throttle_rate")):
        if faults.get(share):
            assert sim.stats[kind] > 0, f"the scenario really injected {kind}"


@pytest.mark.parametrize(
    "scenario, faults",
    [
        ("server errors that never stop", {"error_rate": 1.0}),
        ("a 429 storm that never stops", {"throttle_rate": 1.0}),
        ("answers that always outlast the read timeout", {"slow_rate": 1.0, "slow_seconds": 3}),
    ],
    ids=["errors", "throttling", "timeouts"],
)
def test_when_faults_never_stop_the_retry_budget_ends_the_sync_with_a_clear_error(
    sim, tmp_path, reliability_report, scenario, faults
):
    config = all_history_config(sim.dataset, sim.url, retry_budget_seconds=15, request_timeout_seconds=1)
    discovered = discovered_catalog(tmp_path, config)
    sim.faults.update(faults)
    started = time.monotonic()
    run = run_connector("read", tmp_path, config=config, catalog=configured_catalog(discovered, ["lists"]), timeout=300)
    elapsed = time.monotonic() - started

    messages = [error["message"] for error in run.errors()]
    reliability_report(
        {
            "scenario": scenario,
            "expected": "a clear error within the 15 s retry budget",
            "result": f"error after {elapsed:.0f} s: {messages[0][:300] if messages else 'none'}",
            "records_expected": 0,
            "records_emitted": len(run.records()),
            "missing": 0,
            "duplicates": 0,
        }
    )
    assert run.returncode == 1
    assert len(messages) == 1 and "lists" in messages[0], messages
    assert elapsed < 90, "bounded by the retry budget, never a hang"


OUTAGES = [
    ("server errors that never stop", {"error_rate": 1.0}, "HTTP 5", "transient_error"),
    ("a 429 storm that never stops", {"throttle_rate": 1.0}, "HTTP 429", "transient_error"),
    (
        "answers that always outlast the read timeout",
        {"slow_rate": 1.0, "slow_seconds": 3},
        "ReadTimeout",
        "transient_error",
    ),
]


@pytest.mark.parametrize("scenario, faults, what, failure_type", OUTAGES, ids=["errors", "throttling", "timeouts"])
def test_an_outage_after_data_moved_ends_each_failed_stream_with_one_transient_error_after_what_completed(
    sim, tmp_path, reliability_report, scenario, faults, what, failure_type
):
    """Klaviyo goes down part way through: what completed is out first, then one error per stream that could
    not finish, saying which stream, what kept failing and what to do; the next sync resumes and completes."""
    streams = ["events", "profiles", "lists", "metrics"]
    started = time.monotonic()
    # The read serves 4,423 records in about 53 requests, most of the first ones empty windows of past years
    # (read earliest first, in an order the budget and the threads decide): the outage starts once a random
    # share of the records has been served, so that data moved and most of it is still to come.
    after = random.randrange(100, 2000)
    sim.switch_faults_after_records(sim.stats["records_served"] + after, faults)
    run, _ = read_everything(sim, tmp_path, streams, retry_budget_seconds=15, request_timeout_seconds=1)
    elapsed = time.monotonic() - started

    errors = run.errors()
    failed = [error["stream_descriptor"]["name"] for error in errors]
    reliability_report(
        {
            "scenario": f"{scenario}, once {after} records were served (events, profiles, lists, metrics)",
            "expected": "completed streams and windows first, then one transient error per failed stream; resumes",
            "result": f"exit {run.returncode} after {elapsed:.0f} s; {len(run.records())} records, errors for "
            f"{sorted(failed)}: {errors[0]['message'][:200] if errors else 'none'}",
        }
    )
    assert run.returncode == 1 and errors
    assert len(failed) == len(set(failed)), "one error per failed stream"
    last = run.messages[-len(errors) :]
    assert [m["type"] for m in last] == ["TRACE"] * len(errors), "the errors come after everything that completed"
    for error in errors:
        stream = error["stream_descriptor"]["name"]
        assert error["failure_type"] == failure_type, error
        assert f"'{stream}'" in error["message"] and what in error["message"] and "sync again" in error["message"]
        assert "Exception" not in error["message"] and "Traceback" not in error["message"]
    assert run.records() and run.of_type("STATE"), "records and states moved before the outage"

    sim.faults.update({name: 0 for name in faults})
    resumed = run_connector(
        "read",
        tmp_path,
        config=all_history_config(sim.dataset, sim.url),
        catalog=configured_catalog(discovered_catalog(tmp_path, all_history_config(sim.dataset, sim.url)), streams),
        state=run.final_states(),
    )
    assert resumed.returncode == 0, resumed.errors()
    expected = all_history_ids(sim.dataset)
    for stream in streams:
        delivered = {key(stream, r) for r in run.records(stream)} | {key(stream, r) for r in resumed.records(stream)}
        assert delivered == expected[stream], stream
