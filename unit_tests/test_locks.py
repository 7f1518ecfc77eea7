"""The lock files, and what installs from them, agree: a rebuild installs exactly what was tested.

`locks/runtime.txt` is what the image installs, `locks/dev.txt` what scripts/setup.sh installs (so the tests and
CI run on the image's versions), `locks/pyairbyte.txt` PyAirbyte's environment; `bash scripts/lock.sh` writes all
three. Each pins every package to one version with the hashes of its files, within what pyproject.toml allows, and
each install checks them (pip's --require-hashes); the connector itself is installed on top without resolving
anything (--no-deps), so nothing unlocked comes in with it.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "locks"
RUNTIME, DEV, PYAIRBYTE = LOCKS / "runtime.txt", LOCKS / "dev.txt", LOCKS / "pyairbyte.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """Each package of `lock` (its canonical name) -> its version and the hashes of its files."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for line in lock.read_text().replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # name[extras]==version, then its hashes (the extras, which pip needs to match what asks for them, may
        # hold spaces)
        pinned = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(\S+)((?:\s+--hash=\S+)*)\s*", line)
        assert pinned, f"{lock.name}: not one version with its hashes: {line.strip()}"
        hashes = frozenset(option.removeprefix("--hash=") for option in pinned.group(3).split())
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", value) for value in hashes), (
            f"{lock.name}: {pinned.group(1)} must carry sha256 hashes only, and one at least"
        )
        found[canonicalize_name(pinned.group(1))] = (pinned.group(2), hashes)
    return found


def within(lock: Path, requirements: list[str]) -> list[str]:
    """The requirements `lock` does not pin within their ranges (the unpinned ones included)."""
    locked = pins(lock)
    wrong = []
    for text in requirements:
        requirement = Requirement(text)
        pinned = locked.get(canonicalize_name(requirement.name))
        if pinned is None or not requirement.specifier.contains(pinned[0], prereleases=True):
            wrong.append(f"{text}: {pinned[0] if pinned else 'not locked'}")
    return wrong


def run_lines(dockerfile: str) -> list[str]:
    """The Dockerfile's RUN instructions, each on one line."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    return [line for line in joined.splitlines() if line.startswith("RUN ")]


@pytest.mark.parametrize("lock", [RUNTIME, DEV, PYAIRBYTE], ids=lambda lock: lock.name)
def test_a_lock_pins_every_package_with_its_hashes_and_says_how_it_is_written(lock: Path):
    locked = pins(lock)
    assert locked, f"{lock.name} pins nothing"
    assert "source-klaviyo" not in locked, "the connector itself installs from the work tree, not the lock"
    header = "".join(itertools.takewhile(lambda line: line.startswith("#"), lock.read_text().splitlines(True)))
    assert "bash scripts/lock.sh" in header and "uv pip compile --generate-hashes" in header
    assert f"locks/{lock.name}" in (ROOT / "scripts" / "lock.sh").read_text(), "scripts/lock.sh writes it"


def test_the_runtime_lock_pins_the_dependencies_and_the_build_backend_within_pyprojects_ranges():
    asked = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["build-system"]["requires"]]
    assert not within(RUNTIME, asked)
    assert any(Requirement(text).name == "airbyte-cdk" for text in asked)


def test_the_dev_lock_is_the_runtime_lock_at_the_same_versions_and_hashes_with_the_dev_extras():
    runtime, dev = pins(RUNTIME), pins(DEV)
    differ = sorted(name for name, pin in runtime.items() if dev.get(name) != pin)
    assert not differ, f"dev.txt locks these otherwise than runtime.txt, or not at all: {differ}"
    assert not within(DEV, PYPROJECT["project"]["optional-dependencies"]["dev"])


def test_the_pyairbyte_lock_pins_what_its_input_asks_for():
    asked = [line for line in (LOCKS / "pyairbyte.in").read_text().splitlines() if line and not line.startswith("#")]
    assert asked and not within(PYAIRBYTE, asked)


def test_the_image_installs_the_runtime_lock_with_hashes_then_the_connector_without_resolving_anything():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY locks/runtime\.txt ", dockerfile, flags=re.M)
    installs = [line for line in run_lines(dockerfile) if "pip install" in line]
    assert len(installs) == 2, installs
    locked, package = installs
    assert "--require-hashes" in locked and "--only-binary :all:" in locked and "-r locks/runtime.txt" in locked
    assert "--no-deps" in package and "--no-build-isolation" in package and package.endswith(" .")
    assert re.search(r"^ARG BASE_IMAGE=\S+$", dockerfile, flags=re.M) and "FROM ${BASE_IMAGE}" in dockerfile


def test_setup_installs_the_dev_lock_with_hashes_then_the_connector_and_again_when_either_input_changes():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    installs = [line.strip() for line in setup.splitlines() if " install " in line and not line.startswith("#")]
    assert installs == [
        '"${pip[@]}" install --require-hashes --only-binary :all: -r locks/dev.txt',
        '"${pip[@]}" install --no-deps --no-build-isolation -e .',
    ]
    (stamp,) = [line for line in setup.splitlines() if line.startswith("stamp=")]
    assert "locks/dev.txt" in stamp and "pyproject.toml" in stamp


def test_ci_installs_through_setup_alone():
    ci = (ROOT / ".ci" / "run").read_text()
    assert not re.search(r"\bpip\b", ci) and "bash scripts/lint.sh" in ci and "bash scripts/test.sh" in ci
    for script in ("lint.sh", "test.sh"):
        text = (ROOT / "scripts" / script).read_text()
        assert "bash scripts/setup.sh" in text and not re.search(r"\bpip\b", text), script


def test_pyairbyte_is_installed_from_its_lock_with_hashes():
    setup = (ROOT / "scripts" / "setup_pyairbyte.sh").read_text()
    assert 'lock="locks/pyairbyte.txt"' in setup and "--require-hashes" in setup
    assert setup.count("pip install") == 1, "one pip install, the lock's"
