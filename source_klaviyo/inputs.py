"""The command's input files (config, catalog, state), read and checked before the CDK sees them.

The CDK answers an unreadable file with a traceback; these checks answer with one
config error that names the file and what is wrong with it. The config is validated
here too, before any of its values is registered as a secret. A state file in the
legacy shape, one object mapping stream names to their states, is rewritten into
per-stream STATE messages (with a warning) rather than refused.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import AirbyteStateMessageSerializer, ConfiguredAirbyteCatalogSerializer, FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.config import parse_config

logger = logging.getLogger("airbyte")


def checked_inputs(args: list[str]) -> tuple[list[str], Mapping[str, Any] | None]:
    """(the arguments to run the CDK with, the config) once every input file has been read and checked."""
    parsed = AirbyteEntrypoint.parse_args(args)
    config = None
    if getattr(parsed, "config", None):
        config = _json_file(parsed.config, "config")
        if not isinstance(config, dict):
            raise _input_error(f"The config file {parsed.config} must hold a JSON object, not {type(config).__name__}.")
        parse_config(config)  # before the CDK registers its values as secrets or echoes them
    if getattr(parsed, "catalog", None):
        catalog = _json_file(parsed.catalog, "catalog")
        what = f"The catalog file {parsed.catalog}"
        _check_shape(ConfiguredAirbyteCatalogSerializer, catalog, what, "configured catalog")
    if getattr(parsed, "state", None):
        args = _checked_state(args, parsed.state)
    return args, config


def _checked_state(args: list[str], path: str) -> list[str]:
    state = _json_file(path, "state")
    if isinstance(state, dict) and state and all(isinstance(value, dict) for value in state.values()):
        logger.warning(
            f"The state file {path} holds the legacy shape (an object of per-stream states); "
            "reading it as one STREAM state per stream."
        )
        state = [
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": value}}
            for name, value in state.items()
        ]
        rewritten = Path(tempfile.mkdtemp(prefix="source-klaviyo-")) / "state.json"
        rewritten.write_text(json.dumps(state))
        args = [str(rewritten) if arg == path else arg for arg in args]
    if not isinstance(state, list):
        raise _input_error(f"The state file {path} must hold a JSON list of STATE messages.")
    for index, message in enumerate(state):
        _check_shape(AirbyteStateMessageSerializer, message, f"Entry {index} of the state file {path}", "STATE message")
    return args


def _check_shape(serializer: Any, document: Any, what: str, shape: str) -> None:
    try:
        serializer.load(document)
    except Exception as error:  # the serializer raises several kinds of validation error
        raise _input_error(f"{what} is not a {shape}: {_summary(error)}") from None


def _json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise _input_error(f"The {what} file {path} cannot be read: {error.strerror or error}.") from None
    except json.JSONDecodeError as error:
        raise _input_error(
            f"The {what} file {path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None


def _summary(error: Exception) -> str:
    """The validator's words, on one line: its heading and the first problem it lists."""
    lines = [line.strip(" -") for line in str(error).strip().splitlines() if line.strip(" -")]
    return " ".join(lines[:2])[:300] or type(error).__name__


def _input_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, failure_type=FailureType.config_error)
