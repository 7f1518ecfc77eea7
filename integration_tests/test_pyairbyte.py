"""PyAirbyte runs the connector (local executable, offline) into its DuckDB cache, the second time incrementally."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from integration_tests.connector_cli import CONNECTOR
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY
from integration_tests.klaviyo_sim.data import DAY
from scripts.demo import PYAIRBYTE_ENVIRONMENT

SCRIPT = Path(__file__).with_name("pyairbyte_read.py")
pytestmark = pytest.mark.ci_required


def read(python: Path, folder: Path, config: dict, *streams: str) -> dict:
    environment = {**os.environ, **PYAIRBYTE_ENVIRONMENT}
    finished = subprocess.run(
        [str(python), str(SCRIPT), json.dumps(config), CONNECTOR, *streams],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    # PyAirbyte stops spec and discover with SIGTERM and takes any status but killed-by-SIGTERM for a failure.
    assert "Exception ignored" not in finished.stderr, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_pyairbyte_reads_into_duckdb_and_the_second_read_is_incremental(pyairbyte, klaviyo_sim, tmp_path):
    dataset = klaviyo_sim.dataset
    dataset.hold_back(120 * DAY)
    config = {"api_key": FULL_ACCESS_KEY, "api_url": klaviyo_sim.url}

    first = read(pyairbyte, tmp_path, config, "lists", "templates")
    for stream in ("lists", "templates"):
        assert first["ids"][stream] == sorted(
            r.id for r in dataset.collection(stream) if r.times["updated"] >= klaviyo_sim.dataset.now - 730 * DAY
        )
    newest = {stream: max(r.times["updated"] for r in dataset.collection(stream)) for stream in ("lists", "templates")}

    dataset.reveal()
    second = read(pyairbyte, tmp_path, config, "lists", "templates")
    newer = sum(
        1
        for stream in ("lists", "templates")
        for r in dataset.collection(stream)
        if r.times["updated"] >= newest[stream]
    )
    assert second["processed"] == newer < first["processed"], "only what changed since the first read's state"
    for stream in ("lists", "templates"):
        assert second["ids"][stream] == sorted(
            r.id for r in dataset.collection(stream) if r.times["updated"] >= dataset.now - 730 * DAY
        )
