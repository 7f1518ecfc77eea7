"""The API key never reaches stdout or stderr: every command, run with a recognisable key, is scanned.

The runs include --debug, faults that make the connector log and retry, errors that end a sync
(their messages and stack traces), a key Klaviyo rejects, and the v1 API, which puts the key in
the URL's query string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from integration_tests.connector_cli import configured_catalog, discovered_catalog, run_connector
from integration_tests.expectations import all_history_config
from integration_tests.klaviyo_sim import key_without

CANARY = key_without("canary:read")  # the simulated account accepts it: it lacks only a scope nothing needs
REJECTED = "pk_canary_rejected_0123456789abcdef"
FAULTS = {"error_rate": 0.05, "reset_rate": 0.03, "truncate_rate": 0.03, "throttle_rate": 0.05}


def leaks(text: str) -> list[str]:
    """The key, or a recognisable piece of it, wherever it occurs in `text`."""
    return [piece for piece in (CANARY, REJECTED, "without_canary", "canary_rejected") if piece in text]


def catalog_for(folder, config, streams) -> dict[str, Any]:
    return configured_catalog(discovered_catalog(folder, {**config, "api_key": CANARY}), streams)


@dataclass(frozen=True)
class Scenario:
    name: str
    command: str
    key: str | None = CANARY
    overrides: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    streams: tuple[str, ...] | None = None
    exit_code: int = 0
    sends_key: bool = True


SCENARIOS = [
    Scenario("spec", "spec", key=None, sends_key=False),
    Scenario("check", "check"),
    Scenario("check on revision 2023-10-15 under faults", "check", overrides={"revision": "2023-10-15"}, faults=FAULTS),
    Scenario("check with a key Klaviyo rejects", "check", key=REJECTED),
    Scenario("check with the key pasted into start_date", "check", overrides={"start_date": CANARY}, sends_key=False),
    Scenario("discover", "discover"),  # it looks up the account's metrics for the reports' conversion metric
    Scenario("read of every stream under faults", "read", faults=FAULTS),
    Scenario("read with a key Klaviyo rejects", "read", key=REJECTED, streams=("lists",), exit_code=1),
    Scenario("read of campaigns_v1 (key in the URL) under faults", "read", faults=FAULTS, streams=("campaigns_v1",)),
    Scenario(
        "read of campaigns_v1 answering 410 Gone",
        "read",
        faults={"v1_gone": True},
        streams=("campaigns_v1",),
        exit_code=1,
    ),
    Scenario(
        "read of campaigns_v1 until its retries run out",
        "read",
        overrides={"retry_budget_seconds": 10, "request_timeout_seconds": 1},
        faults={"error_rate": 1.0},
        streams=("campaigns_v1",),
        exit_code=1,
    ),
]


@pytest.mark.parametrize("debug", [False, True], ids=["info", "debug"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
def test_the_key_appears_in_no_output(klaviyo_sim, tmp_path, reliability_report, debug, scenario):
    config = None
    if scenario.key:
        config = {**all_history_config(klaviyo_sim.dataset, klaviyo_sim.url, key=scenario.key), **scenario.overrides}
    catalog = catalog_for(tmp_path, config, scenario.streams) if scenario.command == "read" else None
    klaviyo_sim.faults.update(scenario.faults)
    run = run_connector(scenario.command, tmp_path, config=config, catalog=catalog, flags=["--debug"] if debug else [])

    found = leaks(run.text)
    reliability_report(
        {
            "scenario": f"secrets: {scenario.name}{' (--debug)' if debug else ''}",
            "expected": "the key appears in no output",
            "result": f"{'leaked' if found else 'absent from'} {len(run.messages)} messages and stderr",
        }
    )
    assert run.returncode == scenario.exit_code, run.errors()
    assert run.messages, "the command answered"
    assert (scenario.key in klaviyo_sim.keys_seen) == scenario.sends_key, "the key reached the API when it should"
    assert not found, [line for line in (run.text.splitlines()) if leaks(line)][:3]
