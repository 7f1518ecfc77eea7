"""The built wheel carries what the connector loads at run time; the Dockerfile passes hadolint."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_spec_schemas_and_the_console_script(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("source_klaviyo_complete-*.whl")  # the distribution is named as the package on PyPI
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "source_klaviyo/spec.json" in names
    schemas = {path.name for path in (ROOT / "source_klaviyo" / "schemas").glob("*.json")}
    assert schemas and {f"source_klaviyo/schemas/{name}" for name in schemas} <= names
    (entry_points,) = [name for name in names if name.endswith("entry_points.txt")]
    assert "source-klaviyo = source_klaviyo.run:run" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_dockerfile_is_hadolint_clean():
    hadolint = Path(sys.executable).with_name("hadolint")
    finished = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stdout + finished.stderr
