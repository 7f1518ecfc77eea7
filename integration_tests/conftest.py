from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from integration_tests.klaviyo_sim import Dataset, Faults, Simulator, Sizes
from source_klaviyo.clock import NOW_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
# One pinned "now" for the whole run, for the simulators' data and every connector the tests start
# (they inherit SOURCE_KLAVIYO_NOW), so data, reads and the expectations computed from them agree. The
# connectors' clock reads it with a random fraction of a second, as a real clock would.
NOW = int(datetime.now(timezone.utc).timestamp())
PINNED_NOW = datetime.fromtimestamp(NOW + random.randrange(1, 1_000_000) / 1e6, timezone.utc)
os.environ[NOW_VARIABLE] = PINNED_NOW.isoformat().replace("+00:00", "Z")
# The environment of a connector on the machine's own clock: the incremental and kill tests run once on it.
WALL_CLOCK = {name: value for name, value in os.environ.items() if name != NOW_VARIABLE}
SMALL = Sizes(campaigns=30, templates=24, lists=25, segments=25, flows=9, profiles=300, events=2_000, event_days=45)


@pytest.fixture
def klaviyo_sim() -> Iterator[Simulator]:
    """A fresh simulator on a free loopback port, in this process (tests can reach its data and faults)."""
    simulator = Simulator(Dataset(seed=1, now=NOW, sizes=SMALL), Faults())
    with simulator.run_in_thread() as running:
        yield running


@pytest.fixture(scope="session")
def pyairbyte() -> Path:
    """The Python of PyAirbyte's own environment, made once by the script the demo uses (see there why its own)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "setup_pyairbyte.sh")], check=True)
    return ROOT / ".venv-pyairbyte" / "bin" / "python"


@pytest.fixture(scope="session")
def reliability_rows() -> Iterator[list[dict]]:
    """Every reliability row of the run; scripts/reliability.py sets RELIABILITY_RESULTS to keep them."""
    rows: list[dict] = []
    yield rows
    if os.environ.get("RELIABILITY_RESULTS"):
        # One file per pytest-xdist worker (each has a session of its own); the script reads them all.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        Path(os.environ["RELIABILITY_RESULTS"], f"{worker}.json").write_text(json.dumps(rows, indent=1))


@pytest.fixture
def reliability_report(request: pytest.FixtureRequest, reliability_rows: list[dict]) -> Callable[[dict], None]:
    """Records one row of docs/RELIABILITY.md, tagged with the test that measured it (for its verdict)."""
    return lambda row: reliability_rows.append({"test": request.node.nodeid, **row})
