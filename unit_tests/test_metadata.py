"""metadata.yaml carries what Airbyte's registry requires and agrees with the package and the Dockerfile."""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from source_klaviyo.endpoints import KLAVIYO_API_URL, REVISIONS
from source_klaviyo.errors import CONNECT_TIMEOUT
from source_klaviyo.rate_limits import build_budget
from source_klaviyo.streams import STREAM_CLASSES

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
    assert DATA["connectorType"] == "source"
    assert DATA["allowedHosts"]["hosts"] == ["a.klaviyo.com"]
    assert all(isinstance(tag, str) for tag in DATA["tags"])


# Airbyte's official Klaviyo connector: this one must not be taken for it.
OFFICIAL = {
    "definitionId": "95e8cffd-b8c4-4039-968e-d32fb4a69bde",
    "dockerRepository": "airbyte/source-klaviyo",
    "documentationUrl": "https://docs.airbyte.com/integrations/sources/klaviyo",
    "packageName": "airbyte-source-klaviyo",
}
DEFINITION_ID = "3067fa89-9329-41b0-8401-d36dc38f866d"  # this connector's, kept from 0.1.0 on


def versions() -> dict[str, str]:
    """The version each place states: the package, the image tag, the image label, the newest changelog entry."""
    (package,) = re.findall(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    (label,) = re.findall(r'io\.airbyte\.version="([^"]+)"', (ROOT / "Dockerfile").read_text())
    changelog = re.findall(
        r"^## (\d+\.\d+\.\d+) \(\d{4}-\d{2}-\d{2}\)$", (ROOT / "CHANGELOG.md").read_text(), flags=re.M
    )
    return {"pyproject": package, "metadata": DATA["dockerImageTag"], "label": label, "changelog": changelog[0]}


def test_the_package_image_tag_image_label_and_newest_changelog_entry_state_one_version():
    found = versions()
    assert len(set(found.values())) == 1, found
    assert re.fullmatch(r"\d+\.\d+\.\d+", found["pyproject"]), "semantic versioning"


def test_every_version_has_a_changelog_entry_newest_first():
    entries = re.findall(r"^## (\d+)\.(\d+)\.(\d+) ", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    numbers = [tuple(map(int, entry)) for entry in entries]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) == len(set(numbers)), numbers


def test_the_connector_has_an_identity_of_its_own_not_the_official_connectors():
    ours = {
        "definitionId": DATA["definitionId"],
        "dockerRepository": DATA["dockerRepository"],
        "documentationUrl": DATA["documentationUrl"],
        "packageName": DATA["remoteRegistries"]["pypi"]["packageName"],
    }
    assert not {key for key, value in ours.items() if value == OFFICIAL[key]}, ours
    assert DATA["definitionId"] == DEFINITION_ID, "the definitionId is kept: a new one makes a new connector"
    (name,) = re.findall(r'^name = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    assert name == ours["packageName"]
    assert f'io.airbyte.name="{DATA["dockerRepository"]}"' in (ROOT / "Dockerfile").read_text()
    spec = json.loads((ROOT / "source_klaviyo" / "spec.json").read_text())
    assert spec["documentationUrl"] == DATA["documentationUrl"]


def test_the_icon_the_metadata_names_is_an_svg_in_the_repository():
    icon = ROOT / DATA["icon"]
    assert icon.exists() and ET.parse(icon).getroot().tag.endswith("svg")


def test_suggested_streams_are_streams_of_the_connector():
    names = {cls.name for cls in STREAM_CLASSES}
    assert set(DATA["suggestedStreams"]["streams"]) <= names


def test_the_base_image_is_the_dockerfiles_pinned_by_digest():
    dockerfile = (ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, flags=re.M)
    assert DATA["connectorBuildOptions"]["baseImage"] == base
    assert re.search(r"@sha256:[0-9a-f]{64}$", base), "pinned by digest"


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
