"""The Docker image, built and run through the Python docker SDK, against the simulator.

Needs a container engine (in CI: ../shared/tools/container-engine-up, which .ci/run starts). Without
one these tests skip locally; in CI a skip is a failure (`ci_required`). The image is built from
LOCAL_PYTHON_BASE when set (no registry can be reached here), else from the Dockerfile's default.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import DockerException

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, discovered_catalog, parse_lines, run_connector
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset, Faults, Simulator, Sizes
from source_klaviyo.clock import NOW_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
TAG = "klaviyo-complete/source-klaviyo-complete:test"
pytestmark = pytest.mark.ci_required
# Profiles enough that a read at 200 ms an answer is still under way when it is stopped.
SLOW_READ = Sizes(campaigns=1, templates=1, lists=1, segments=1, flows=1, profiles=20_000, events=10)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker.DockerClient]:
    """The engine, with the image built once for the whole run: the first test process (of pytest-xdist's
    workers) to take the lock builds it, the others wait and find it built."""
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as error:
        pytest.skip(f"no container engine reachable ({error}); start one with ../shared/tools/container-engine-up")
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, which holds every worker's own
    with (shared / "image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = shared / "image.built"
        if not built.exists():
            base = os.environ.get("LOCAL_PYTHON_BASE")
            client.images.build(path=str(ROOT), tag=TAG, buildargs={"BASE_IMAGE": base} if base else {}, rm=True)
            built.touch()
    yield client
    client.close()


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    """A folder the image's non-root user can read, mounted at /secrets."""
    tmp_path.chmod(0o755)
    return tmp_path


def in_container(engine: docker.DockerClient, secrets: Path, *args: str) -> list[dict]:
    """The command's stdout messages, read once the container has exited.

    Not `containers.run(...)` without detach: it follows the log stream while the container runs,
    and podman's stream ends early now and then, dropping the last part of the output.
    """
    for path in secrets.iterdir():
        path.chmod(0o644)
    container = engine.containers.run(
        TAG,
        list(args),
        volumes={str(secrets): {"bind": "/secrets", "mode": "ro"}},
        network_mode="host",  # the simulator listens on the host's loopback
        environment={NOW_VARIABLE: os.environ[NOW_VARIABLE]},  # the simulator's now, as the CLI runs get it
        detach=True,
    )
    try:
        status = container.wait(timeout=600)["StatusCode"]
        output = container.logs(stdout=True, stderr=False).decode()
        assert status == 0, f"exit {status}: {container.logs(stdout=False, stderr=True).decode()[-2000:]}"
    finally:
        container.remove(force=True)
    return list(parse_lines(output.splitlines()))


def write(secrets: Path, name: str, content: object) -> str:
    (secrets / name).write_text(json.dumps(content))
    return f"/secrets/{name}"


def test_the_image_runs_the_console_script_as_a_non_root_user(engine):
    image = engine.images.get(TAG)
    settings = image.attrs["Config"]
    assert settings["Entrypoint"] == ["/opt/venv/bin/source-klaviyo"]
    assert "AIRBYTE_ENTRYPOINT=/opt/venv/bin/source-klaviyo" in settings["Env"]
    assert settings["User"] not in ("", "0", "root")


def test_spec_in_the_image_is_the_clis(engine, secrets, tmp_path):
    (image_spec,) = [m["spec"] for m in in_container(engine, secrets, "spec") if m["type"] == "SPEC"]
    (cli_spec,) = [m["spec"] for m in run_connector("spec", tmp_path).of_type("SPEC")]
    assert image_spec == cli_spec


def test_check_in_the_image_reaches_the_simulator(engine, secrets, klaviyo_sim):
    config = write(secrets, "config.json", {"api_key": FULL_ACCESS_KEY, "api_url": klaviyo_sim.url})
    (status,) = [
        m["connectionStatus"]
        for m in in_container(engine, secrets, "check", "--config", config)
        if m["type"] == "CONNECTION_STATUS"
    ]
    assert status["status"] == "SUCCEEDED"


def test_a_read_in_the_image_returns_the_clis_records(engine, secrets, klaviyo_sim, tmp_path):
    settings = {"api_key": FULL_ACCESS_KEY, "api_url": klaviyo_sim.url}
    discovered = discovered_catalog(tmp_path, settings)
    catalog = configured_catalog(discovered, ["lists", "metrics", "events", "campaigns_email"])
    config_path, catalog_path = write(secrets, "config.json", settings), write(secrets, "catalog.json", catalog)

    messages = in_container(engine, secrets, "read", "--config", config_path, "--catalog", catalog_path)
    cli = run_connector("read", tmp_path, config=settings, catalog=catalog)

    def by_stream(records):
        return {(r["stream"], r["data"]["id"]): r["data"] for r in records}

    image_records = by_stream(m["record"] for m in messages if m["type"] == "RECORD")
    assert image_records and image_records == by_stream(m["record"] for m in cli.of_type("RECORD"))
    assert {stream for stream, _ in image_records} == {"lists", "metrics", "events", "campaigns_email"}


def test_docker_stop_ends_a_read_in_the_image_with_its_state_and_one_error_not_a_kill(engine, secrets, tmp_path):
    """How the platform stops a sync: SIGTERM to the container's first process (which Python, as PID 1, would
    ignore without a handler), then SIGKILL after the grace period. The connector stops well within it."""
    with Simulator(Dataset(seed=2, now=NOW, sizes=SLOW_READ), Faults(latency_ms=200)).run_in_thread() as sim:
        settings = {"api_key": FULL_ACCESS_KEY, "api_url": sim.url, "num_workers": 2}
        catalog = configured_catalog(discovered_catalog(tmp_path, settings), ["profiles"])
        config_path, catalog_path = write(secrets, "config.json", settings), write(secrets, "catalog.json", catalog)
        container = engine.containers.run(
            TAG,
            ["read", "--config", config_path, "--catalog", catalog_path],
            volumes={str(secrets): {"bind": "/secrets", "mode": "ro"}},
            network_mode="host",
            environment={NOW_VARIABLE: os.environ[NOW_VARIABLE]},
            detach=True,
        )
        try:
            deadline = time.monotonic() + 120
            while b'"type":"RECORD"' not in container.logs(stdout=True, stderr=False) and time.monotonic() < deadline:
                time.sleep(0.5)
            stopped_at = time.monotonic()
            container.stop(timeout=10)  # SIGTERM, then SIGKILL after 10 s
            status = container.wait(timeout=60)["StatusCode"]
            seconds = time.monotonic() - stopped_at
            lines = container.logs(stdout=True, stderr=False).decode().splitlines()
        finally:
            container.remove(force=True)
    messages = [json.loads(line) for line in lines if line.strip()]  # every line a whole message
    errors = [m for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
    assert status == 143 and seconds < 10, (status, seconds)
    assert (
        len(errors) == 1 and messages[-1] is errors[0] and "stopped (SIGTERM)" in errors[0]["trace"]["error"]["message"]
    )
    assert messages[-2]["type"] == "STATE" and any(m["type"] == "RECORD" for m in messages)
