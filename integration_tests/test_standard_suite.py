"""The CDK's standard source test suite, in process, over acceptance-test-config.yml and the simulator.

The suite reads its scenarios (spec; check with a good key, a revoked key and a malformed config;
discover; a full-refresh read of every stream) from acceptance-test-config.yml; its configs point at
a simulator this module starts on 127.0.0.1:18765 with a pinned "now", so each read is the same.
The suite's own docker variants are left out here: they need a registry (to pull the published
image for the backward-compatibility check) and a bridge network that cannot reach the simulator;
test_container.py runs the image against the simulator instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase

from integration_tests.expectations import all_history_config, all_history_ids, key
from integration_tests.klaviyo_sim import Dataset, Faults, Simulator, Sizes
from integration_tests.klaviyo_sim.data import parse_now
from source_klaviyo import SourceKlaviyo
from source_klaviyo.clock import FixedClock

ROOT = Path(__file__).resolve().parents[1]
ACCEPTANCE = ROOT / "integration_tests" / "acceptance"
PORT = 18765  # the port integration_tests/acceptance/*.json name
NOW = parse_now("2026-11-01T00:00:00Z")
SIZES = Sizes(campaigns=12, templates=8, lists=6, segments=6, flows=5, profiles=150, events=3_000, event_days=60)


@pytest.fixture(scope="module", autouse=True)
def simulator() -> Iterator[Simulator]:
    with Simulator(Dataset(seed=1, now=NOW, sizes=SIZES), Faults()).run_in_thread(port=PORT) as running:
        yield running


class TestKlaviyoStandardSuite(SourceTestSuiteBase):
    connector = SourceKlaviyo

    @classmethod
    def get_connector_root_dir(cls) -> Path:
        return ROOT

    @classmethod
    def create_connector(cls, scenario: ConnectorTestScenario | None) -> SourceKlaviyo:
        """On the simulator's clock: the series reports read the days before "now", which on the machine's
        clock drift past the simulator's data as the calendar moves on."""
        return SourceKlaviyo(FixedClock(datetime.fromtimestamp(NOW, timezone.utc)))

    # Run as images against the simulator in test_container.py (see the module docstring).
    test_docker_image_build_and_spec = None
    test_docker_image_spec_backward_compatibility = None
    test_docker_image_build_and_check = None
    test_docker_image_build_and_config_matches_spec = None
    test_docker_image_build_and_discover = None
    test_docker_image_build_and_read = None


def test_the_acceptance_config_is_the_all_history_config_of_this_simulator(simulator):
    config = json.loads((ACCEPTANCE / "config.json").read_text())
    assert config == all_history_config(simulator.dataset, f"http://127.0.0.1:{PORT}")


def test_the_acceptance_read_returns_exactly_the_simulators_records(simulator):
    """The records the suite's basic read sees, held to the simulator's own data, stream by stream."""
    config = json.loads((ACCEPTANCE / "config.json").read_text())
    catalog = ConfiguredAirbyteCatalogSerializer.load(json.loads((ACCEPTANCE / "configured_catalog.json").read_text()))
    output = read(SourceKlaviyo(FixedClock(datetime.fromtimestamp(NOW, timezone.utc))), config, catalog)

    ids: dict[str, set[str]] = {}
    for message in output.records:
        ids.setdefault(message.record.stream, set()).add(key(message.record.stream, message.record.data))
    for stream, wanted in all_history_ids(simulator.dataset).items():
        assert ids.get(stream, set()) == wanted, stream
    days = {m.record.data["date"] for m in output.records if m.record.stream == "metric_aggregates"}
    assert len(days) == 14, "fourteen daily rows per flow"
