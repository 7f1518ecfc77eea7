"""The CDK's standard source test suite, in process, over acceptance-test-config.yml and the simulator.

The suite reads its scenarios (spec; check with a good key, a revoked key and a malformed config;
discover; a full-refresh read of every stream) from acceptance-test-config.yml. This module starts the
simulator on a loopback port it finds free at run time, and hands the suite each config with its
api_url pointed there, so two runs at once cannot collide.

The CDK does not collect the `incremental` section; the suite class here runs it as Airbyte's
Connector Acceptance Tests did: two sequential reads, the second from the first one's final state,
and a read from a state far in the future.

The connector runs on the simulator's pinned "now" plus a random sub-second part: real syncs start at
any microsecond, and a whole-second pinned clock once hid a bug every real sync hit.

The suite's own docker variants are left out here: they need a registry (to pull the published
image for the backward-compatibility check) and a bridge network that cannot reach the simulator;
test_container.py runs the image against the simulator instead.
"""

from __future__ import annotations

import json
import random
import socket
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from airbyte_cdk.models import (
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    SyncMode,
)
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, discover, read
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from dateutil.relativedelta import relativedelta

from integration_tests.expectations import all_history_config, all_history_ids, key
from integration_tests.klaviyo_sim import Dataset, Faults, Simulator, Sizes
from integration_tests.klaviyo_sim.data import parse_now
from source_klaviyo import SourceKlaviyo
from source_klaviyo.clock import FixedClock
from source_klaviyo.config import KlaviyoConfig, parse_config
from source_klaviyo.state import MOST_RECENT, UNFINISHED

ROOT = Path(__file__).resolve().parents[1]
ACCEPTANCE = ROOT / "integration_tests" / "acceptance"
NOW = parse_now("2026-11-01T00:00:00Z")
CONNECTOR_NOW = datetime.fromtimestamp(NOW, timezone.utc) + timedelta(microseconds=random.randint(1, 999_999))
SIZES = Sizes(campaigns=12, templates=8, lists=6, segments=6, flows=5, profiles=150, events=3_000, event_days=60)
MAX_SHOWN = 5  # offending records shown per stream


class LoopbackPort:
    """A free loopback port, held from collection (the scenarios' configs name it) until the simulator binds it.

    Held, no other bind(0) on the machine gets it, so two runs at once get two ports; SO_REUSEADDR lets
    the simulator (asyncio sets it too) bind it while it is held."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.number = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.number}"

    def release(self) -> None:
        self._socket.close()


PORT = LoopbackPort()


def on_simulator(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with its api_url pointed at this run's simulator; a config without one (the malformed
    config, a real account's) is left as it is."""
    return {**config, "api_url": PORT.url} if "api_url" in config else dict(config)


def connector() -> SourceKlaviyo:
    """On the simulator's clock: the series reports read the days before "now", which on the machine's
    clock drift past the simulator's data as the calendar moves on."""
    return SourceKlaviyo(FixedClock(CONNECTOR_NOW))


@pytest.fixture(scope="module", autouse=True)
def simulator() -> Iterator[Simulator]:
    """The account every scenario reads, with Klaviyo's rate limits off: this module syncs it five times in
    half a minute, and the Reporting API allows each report two requests a minute, so from the third read on
    every report waited out Klaviyo's minute (two minutes in all). Each read still paces itself by the
    connector's budget, which test_defaults.py holds to Klaviyo's limits (no 429 on a full sync)."""
    faults = Faults(rate_limit_scale=0)
    with Simulator(Dataset(seed=1, now=NOW, sizes=SIZES), faults).run_in_thread(port=PORT.number) as running:
        PORT.release()
        yield running


@dataclass(frozen=True)
class IncrementalEntry:
    """An `incremental` entry of acceptance-test-config.yml, in Airbyte's format: a config, the catalog of
    its incremental streams, and `future_state.future_state_path`, a state far in the future."""

    config_path: str
    configured_catalog_path: str
    future_state_path: str

    KEYS = frozenset({"config_path", "configured_catalog_path", "future_state.future_state_path"})

    @classmethod
    def parse(cls, entry: Mapping[str, Any]) -> IncrementalEntry:
        """The entry; one that lacks a key or sets one these tests do not read is refused, as the CDK refuses
        the entries of the sections it collects, so no entry looks like it asks for a check that never runs."""
        future = entry.get("future_state") if isinstance(entry.get("future_state"), Mapping) else {}
        keys = {name for name in entry if name != "future_state"} | {f"future_state.{name}" for name in future}
        if keys != cls.KEYS:
            raise ValueError(
                f"The `incremental` entry for config `{entry.get('config_path')}` in acceptance-test-config.yml "
                f"lacks {sorted(cls.KEYS - keys)} and sets {sorted(keys - cls.KEYS)}: the incremental tests "
                f"read exactly {sorted(cls.KEYS)}."
            )
        return cls(entry["config_path"], entry["configured_catalog_path"], future["future_state_path"])

    def __str__(self) -> str:
        return f"{Path(self.config_path).stem}+{Path(self.configured_catalog_path).stem}"

    def config(self) -> dict[str, Any]:
        return on_simulator(json.loads((ROOT / self.config_path).read_text()))

    def catalog(self) -> ConfiguredAirbyteCatalog:
        return ConfiguredAirbyteCatalogSerializer.load(json.loads((ROOT / self.configured_catalog_path).read_text()))

    def future_state(self) -> list[AirbyteStateMessage]:
        return [AirbyteStateMessageSerializer.load(m) for m in json.loads((ROOT / self.future_state_path).read_text())]

    def cursor_fields(self) -> dict[str, str]:
        """Each stream's cursor field: the catalog's choice, else the stream's default."""
        return {
            configured.stream.name: (configured.cursor_field or configured.stream.default_cursor_field)[0]
            for configured in self.catalog().streams
        }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Runs each incremental test once per `incremental` entry (the CDK's hook does the same for `scenario`)."""
    if "incremental" in metafunc.fixturenames and metafunc.cls is not None:
        entries = metafunc.cls.get_incremental_entries()
        metafunc.parametrize("incremental", entries, ids=[str(entry) for entry in entries], scope="class")


@pytest.fixture(scope="class")
def first_read(incremental: IncrementalEntry) -> EntrypointOutput:
    """An incremental read without state, shared by the tests that look at it and at its final state."""
    return read(connector(), incremental.config(), incremental.catalog())


class TestKlaviyoStandardSuite(SourceTestSuiteBase):
    connector = SourceKlaviyo

    @classmethod
    def get_connector_root_dir(cls) -> Path:
        return ROOT

    @classmethod
    def create_connector(cls, scenario: ConnectorTestScenario | None) -> SourceKlaviyo:
        return connector()

    @classmethod
    def get_scenarios(cls) -> list[ConnectorTestScenario]:
        """The CDK's scenarios, each config read with its api_url pointed at this run's simulator."""
        scenarios = super().get_scenarios()
        configs = [scenario.get_config_dict(connector_root=ROOT, empty_if_missing=False) for scenario in scenarios]
        return [
            scenario.model_copy(update={"config_dict": on_simulator(config)})
            for scenario, config in zip(scenarios, configs, strict=True)
        ]

    @classmethod
    def get_incremental_entries(cls) -> list[IncrementalEntry]:
        """The `incremental` entries of the same acceptance-test-config.yml the CDK reads its scenarios from."""
        section = cls.acceptance_test_config["acceptance_tests"].get("incremental") or {}
        return [IncrementalEntry.parse(entry) for entry in section.get("tests", [])]

    def test_the_incremental_catalog_selects_every_stream_discover_offers_as_incremental(
        self, incremental: IncrementalEntry
    ) -> None:
        """A stream added later, and left out of the catalog, would go untested."""
        offered = {
            stream.name
            for stream in discover(connector(), incremental.config()).catalog.catalog.streams
            if SyncMode.incremental in stream.supported_sync_modes
        }
        selected = {s.stream.name for s in incremental.catalog().streams if s.sync_mode == SyncMode.incremental}
        assert selected == offered, f"offered but not selected: {sorted(offered - selected)}; " + (
            f"selected but not offered: {sorted(selected - offered)}"
        )

    def test_the_future_state_holds_a_state_for_every_stream_of_the_incremental_catalog(
        self, incremental: IncrementalEntry
    ) -> None:
        """A stream the future state leaves out reads from the start, so the future-state read would not test it
        (Airbyte's acceptance tests ask the same at high strictness)."""
        held = {message.stream.stream_descriptor.name for message in incremental.future_state()}
        missing = sorted(set(incremental.cursor_fields()) - held)
        assert not missing, f"{incremental.future_state_path} holds no state for {missing}"

    def test_an_incremental_read_emits_records_and_a_state_for_every_stream(
        self, incremental: IncrementalEntry, first_read: EntrypointOutput
    ) -> None:
        """A stream that emits no STATE starts over on every sync."""
        first_read.raise_if_errors()
        assert first_read.records, "the first read returned no records"
        silent = sorted(set(incremental.cursor_fields()) - set(final_states(first_read)))
        assert not silent, f"streams that emitted no STATE: {silent}"

    def test_the_final_state_of_a_finished_read_says_it_finished(self, first_read: EntrypointOutput) -> None:
        """A state still marked unfinished makes the next sync resume the interrupted one (no lookback, and
        windows read again from their ends) instead of reading on from a finished sync."""
        first_read.raise_if_errors()
        states = {name: stream_state(message) for name, message in final_states(first_read).items()}
        unfinished = {name: state[UNFINISHED] for name, state in states.items() if UNFINISHED in state}
        assert not unfinished, f"final states marked `{UNFINISHED}` (now {CONNECTOR_NOW.isoformat()}): {unfinished}"

    def test_a_read_from_the_final_state_returns_nothing_older_than_that_state_allows(
        self, incremental: IncrementalEntry, first_read: EntrypointOutput
    ) -> None:
        """Airbyte's two sequential reads: the second, from the first one's final state, returns no record
        older than that state, but for the re-read the connector documents for the stream (see `oldest_allowed`)."""
        first_read.raise_if_errors()
        states = final_states(first_read)
        second = read(connector(), incremental.config(), incremental.catalog(), state=list(states.values()))
        second.raise_if_errors()

        config = parse_config(incremental.config(), CONNECTOR_NOW)
        cursor_fields = incremental.cursor_fields()
        floors = {
            name: oldest_allowed(name, stream_state(message), cursor_fields[name], config)
            for name, message in states.items()
            if name in cursor_fields
        }
        too_old: dict[str, list[str]] = {}
        for message in second.records:
            name, data = message.record.stream, message.record.data
            value, floor = data.get(cursor_fields[name]), floors[name](data)
            if value is None or (floor is not None and moment(value) < floor):
                allowed = floor.isoformat() if floor else "any value"
                too_old.setdefault(name, []).append(f"{cursor_fields[name]}={value} (oldest allowed: {allowed})")
        assert not too_old, (
            f"records older than the first read's final state allows (now {CONNECTOR_NOW.isoformat()}): "
            + "; ".join(f"{name}: {len(found)}, e.g. {found[:MAX_SHOWN]}" for name, found in too_old.items())
        )

    def test_state_with_abnormally_large_values(self, incremental: IncrementalEntry) -> None:
        """Airbyte's future-state test: a read from a state far in the future succeeds and returns no record of
        the streams it holds a state for (a state in the future reads nothing; it never reads from the start)."""
        future = incremental.future_state()
        output = read(connector(), incremental.config(), incremental.catalog(), state=future)
        output.raise_if_errors()
        held = {message.stream.stream_descriptor.name for message in future}
        returned = Counter(m.record.stream for m in output.records if m.record.stream in held)
        assert not returned, f"records read despite a state in the future: {dict(returned)}"

    # Run as images against the simulator in test_container.py (see the module docstring).
    test_docker_image_build_and_spec = None
    test_docker_image_spec_backward_compatibility = None
    test_docker_image_build_and_check = None
    test_docker_image_build_and_config_matches_spec = None
    test_docker_image_build_and_discover = None
    test_docker_image_build_and_read = None


def final_states(output: EntrypointOutput) -> dict[str, AirbyteStateMessage]:
    """Each stream's last STATE message of the read: what the platform hands the next sync."""
    return {message.state.stream.stream_descriptor.name: message.state for message in output.state_messages}


def stream_state(message: AirbyteStateMessage) -> dict[str, Any]:
    return AirbyteStateMessageSerializer.dump(message)["stream"]["stream_state"]


def moment(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def oldest_allowed(
    stream: str, state: Mapping[str, Any], cursor_field: str, config: KlaviyoConfig
) -> Callable[[Mapping[str, Any]], datetime | None]:
    """The oldest cursor value a read from the final `state` may return for a record (None: no bound): the
    state's own value, moved back only by the re-read the connector documents for the stream.

    - Date-range state (`slices`): the newest record of the last window, inclusive (a record Klaviyo shows
      late is not skipped); events also `event_lookback_hours` before it (spec.json). A gap between
      windows is read again too.
    - Per-parent state (`states`): each parent from its own cursor value, inclusive; metric_aggregates each
      query's last `reread_intervals` intervals up to it (spec.json). A parent without a value has no bound.
    - Report state (the cursor field): `reporting_lookback_days` before it (spec.json), from the start of
      the period holding that day, in the account's timezone: the day for series reports (cursor `date`),
      the calendar year for values reports (cursor `start`), the period each request reads.
    """
    if "slices" in state:
        *earlier, last = sorted(state["slices"], key=lambda window: moment(window["end"]))
        lookback = timedelta(hours=config.event_lookback_hours if stream == "events" else 0)
        newest = moment(last.get(MOST_RECENT) or last["end"]) - lookback
        floor = min([newest, *(moment(window["end"]) for window in earlier)])
        return lambda record: floor
    if "states" in state:
        parent_field = next((name for entry in state["states"] for name in entry["partition"]), None)
        cursors = {
            entry["partition"][parent_field]: moment(entry["cursor"][cursor_field])
            for entry in state["states"]
            if entry["cursor"].get(cursor_field)
        }
        queries = {query.name: query for query in config.metric_aggregates} if stream == "metric_aggregates" else {}

        def per_parent(record: Mapping[str, Any]) -> datetime | None:
            floor = cursors.get(record.get(parent_field))
            query = queries.get(record.get(parent_field))
            if floor is None or query is None:
                return floor
            local = floor.astimezone(ZoneInfo(query.timezone))
            return local - relativedelta(**{f"{query.interval}s": query.reread_intervals - 1})

        return per_parent
    if not state.get(cursor_field):
        return lambda record: None  # no period read yet: the next read starts where this one did
    reread_from = moment(state[cursor_field]) - timedelta(days=config.reporting_lookback_days)

    def report_period(record: Mapping[str, Any]) -> datetime:
        zone = ZoneInfo(record["timezone"])
        day = reread_from.astimezone(zone).date()
        return datetime.combine(day.replace(month=1, day=1) if cursor_field == "start" else day, time(), zone)

    return report_period


def test_the_acceptance_config_is_the_all_history_config_of_this_simulator(simulator):
    config = on_simulator(json.loads((ACCEPTANCE / "config.json").read_text()))
    assert config == all_history_config(simulator.dataset, simulator.url)


def test_the_acceptance_read_returns_exactly_the_simulators_records(simulator):
    """The records the suite's basic read sees, held to the simulator's own data, stream by stream."""
    config = on_simulator(json.loads((ACCEPTANCE / "config.json").read_text()))
    catalog = ConfiguredAirbyteCatalogSerializer.load(json.loads((ACCEPTANCE / "configured_catalog.json").read_text()))
    output = read(connector(), config, catalog)

    ids: dict[str, set[str]] = {}
    for message in output.records:
        ids.setdefault(message.record.stream, set()).add(key(message.record.stream, message.record.data))
    for stream, wanted in all_history_ids(simulator.dataset).items():
        assert ids.get(stream, set()) == wanted, stream
    days = {m.record.data["date"] for m in output.records if m.record.stream == "metric_aggregates"}
    assert len(days) == 14, "fourteen daily rows per flow"
