"""PyAirbyte runs the connector (local executable, offline) into its DuckDB cache, the second time incrementally."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from integration_tests.connector_cli import CONNECTOR
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY
from integration_tests.klaviyo_sim.data import DAY

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-pyairbyte"
LOCK = ROOT / "locks" / "pyairbyte.txt"
SCRIPT = Path(__file__).with_name("pyairbyte_read.py")
pytestmark = pytest.mark.ci_required


@pytest.fixture(scope="session")
def pyairbyte() -> Path:
    """PyAirbyte's own environment (its dependencies are many and ours need none of them), installed from its lock
    (every version pinned, every file checked against its hash) and made again from scratch when the lock changes."""
    python = VENV / "bin" / "python"
    stamp = VENV / f".installed-{hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]}"
    if not stamp.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--require-hashes", "--only-binary", ":all:", "-r", str(LOCK)], check=True)
        stamp.touch()
    return python


def read(python: Path, folder: Path, config: dict, *streams: str) -> dict:
    environment = {**os.environ, "AIRBYTE_OFFLINE_MODE": "1", "DO_NOT_TRACK": "1"}
    finished = subprocess.run(
        [str(python), str(SCRIPT), json.dumps(config), CONNECTOR, *streams],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
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
