"""The command's input files (config, catalog, state), read for the CDK's own hooks with clear errors.

The CDK reads these files through `Source.read_config`, `read_catalog` and
`read_state`, and answers an unreadable one with a traceback. The source's
overrides call these functions instead: a missing file, bad JSON or the wrong
shape is one config error that names the file and the problem. State in other
shapes is handed to `incoming_state.py`, which takes it over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airbyte_cdk.models import (
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
)

from source_klaviyo.errors import config_error
from source_klaviyo.incoming_state import legacy_streams, stream_messages


def config_file(path: str) -> dict[str, Any]:
    config = _json_file(path, "config")
    if not isinstance(config, dict):
        raise config_error(f"The config file {path} must hold a JSON object, not {type(config).__name__}.")
    return config


def catalog_file(path: str) -> ConfiguredAirbyteCatalog:
    catalog = _json_file(path, "catalog")
    return _load(ConfiguredAirbyteCatalogSerializer, catalog, f"The catalog file {path}", "configured catalog")


def state_file(path: str | None) -> list[AirbyteStateMessage]:
    """The per-stream STATE messages of the file (none without one)."""
    if not path:
        return []
    state = _json_file(path, "state")
    if isinstance(state, dict):
        return legacy_streams(state, f"the state file {path}") if state else []
    if not isinstance(state, list):
        raise config_error(f"The state file {path} must hold a JSON list of STATE messages.")
    messages = [
        _load(AirbyteStateMessageSerializer, message, f"Entry {index} of the state file {path}", "STATE message")
        for index, message in enumerate(state)
    ]
    return stream_messages(messages)


def _load(serializer: Any, document: Any, what: str, shape: str) -> Any:
    try:
        return serializer.load(document)
    except Exception as error:  # the serializer raises several kinds of validation error
        raise config_error(f"{what} is not a {shape}: {_summary(error)}") from None


def _json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise config_error(f"The {what} file {path} cannot be read: {error.strerror or error}.") from None
    except json.JSONDecodeError as error:
        raise config_error(
            f"The {what} file {path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None


def _summary(error: Exception) -> str:
    """The validator's words, on one line: its heading and the first problem it lists."""
    lines = [line.strip(" -") for line in str(error).strip().splitlines() if line.strip(" -")]
    return " ".join(lines[:2])[:300] or type(error).__name__
