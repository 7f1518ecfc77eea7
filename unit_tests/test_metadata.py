"""metadata.yaml carries what Airbyte's registry requires and agrees with the package and the Dockerfile."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import yaml

from source_klaviyo.endpoints import KLAVIYO_API_URL, REVISIONS
from source_klaviyo.errors import CONNECT_TIMEOUT
from source_klaviyo.rate_limits import build_budget

ROOT = Path(__file__).resolve().parents[1]
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
DATA = METADATA["data"]
# ConnectorMetadataDefinitionV0: the fields it requires of `data`, and the values it allows.
REQUIRED = {
    "name",
    "definitionId",
    "connectorType",
    "dockerRepository",
    "dockerImageTag",
    "license",
    "documentationUrl",
    "githubIssueLabel",
    "connectorSubtype",
    "releaseStage",
}
ALLOWED = {
    "connectorType": {"source", "destination"},
    "connectorSubtype": {"api", "database", "datalake", "file", "custom", "message_queue", "unknown", "vectorstore"},
    "releaseStage": {"alpha", "beta", "generally_available", "custom"},
    "supportLevel": {"community", "certified", "archived"},
}


def test_metadata_has_every_field_airbyte_requires_with_allowed_values():
    assert set(METADATA) == {"metadataSpecVersion", "data"}
    assert set(DATA) >= REQUIRED
    for field, values in ALLOWED.items():
        assert DATA[field] in values, field
    assert uuid.UUID(DATA["definitionId"]).version == 4
    assert DATA["connectorType"] == "source" and DATA["dockerRepository"] == "airbyte/source-klaviyo"
    assert DATA["allowedHosts"]["hosts"] == ["a.klaviyo.com"]
    assert all(isinstance(tag, str) for tag in DATA["tags"])


def test_the_image_tag_is_the_package_version_and_the_base_image_is_the_dockerfiles():
    (version,) = re.findall(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    assert DATA["dockerImageTag"] == version
    dockerfile = (ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, flags=re.M)
    assert DATA["connectorBuildOptions"]["baseImage"] == base
    assert re.search(r"@sha256:[0-9a-f]{64}$", base), "pinned by digest"
    assert f'io.airbyte.version="{version}"' in dockerfile


def test_the_heartbeat_outlasts_the_longest_time_the_connector_can_go_without_a_record_or_state():
    """The platform fails a sync whose source sends no RECORD or STATE for maxSecondsBetweenMessages (its heartbeat
    counts no log line or stream status). The longest the connector goes without one: a request retried for the
    whole retry budget, whose last try waits out an endpoint's window, connects and answers within the read
    timeout (each at the largest value the spec allows)."""
    spec = json.loads((ROOT / "source_klaviyo" / "spec.json").read_text())["connectionSpecification"]["properties"]
    windows = [
        rate.interval / 1000
        for revision in REVISIONS
        for policy in build_budget(KLAVIYO_API_URL, revision)._policies
        for rate in policy._bucket.rates
    ]
    longest = (
        spec["retry_budget_seconds"]["maximum"]
        + max(windows)
        + CONNECT_TIMEOUT
        + spec["request_timeout_seconds"]["maximum"]
    )
    assert longest < DATA["maxSecondsBetweenMessages"] <= 1.1 * longest, (longest, DATA["maxSecondsBetweenMessages"])
