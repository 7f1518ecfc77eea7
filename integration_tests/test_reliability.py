"""Faults on every stream: the sync completes with every record once, or ends in a clear error in bounded time.

Each scenario reads every stream (all history) from a simulator that misbehaves as named, and compares
what was emitted with the simulator's data. Rows go to docs/RELIABILITY.md via scripts/reliability.py.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.expectations import all_history_config, all_history_ids
from integration_tests.klaviyo_sim import Dataset, Faults, Simulator, Sizes

SIZES = Sizes(campaigns=20, templates=15, lists=12, segments=12, flows=6, profiles=400, events=4_000, event_days=40)
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
        "two windows: Klaviyo's limits at 20%, another client using half of each window",
        {"rate_limit_scale": 0.2, "competing_share": 0.5},
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


def read_everything(sim: Simulator, folder, **extra):
    config = all_history_config(sim.dataset, sim.url, **extra)
    discovered = discovered_catalog(folder, config)
    return run_connector("read", folder, config=config, catalog=configured_catalog(discovered), timeout=900)


@pytest.mark.parametrize("scenario, faults, extra", SCENARIOS, ids=[name.split(":")[0] for name, _, _ in SCENARIOS])
def test_a_sync_under_faults_completes_with_every_record_once(
    sim, tmp_path, reliability_report, scenario, faults, extra
):
    baseline = {r["id"] for r in read_everything(sim, tmp_path).records("metric_aggregates")} if faults else None
    sim.faults.update(faults)
    run = read_everything(sim, tmp_path, **extra)

    expected = all_history_ids(sim.dataset)
    emitted = Counter((r["stream"], r["data"]["id"]) for r in (m["record"] for m in run.of_type("RECORD")))
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
    sim.faults.update(faults)
    config = all_history_config(sim.dataset, sim.url, retry_budget_seconds=15, request_timeout_seconds=1)
    discovered = discovered_catalog(tmp_path, config)
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
