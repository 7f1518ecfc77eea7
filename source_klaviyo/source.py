"""SourceKlaviyo: check, discover and a concurrent read of every Klaviyo stream.

All streams run through the CDK's concurrent engine (ConcurrentSourceAdapter +
StreamFacade): streams read side by side, incremental ones in windows from a
ConcurrentCursor, and one shared API budget keeps every endpoint under
Klaviyo's limits. Before a read, one probe per selected stream turns a bad key
or a missing scope into a single clear config error before any data moves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import datetime, timezone
from typing import Any

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    AirbyteStateType,
    ConfiguredAirbyteCatalog,
    FailureType,
    Status,
    SyncMode,
)
from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource
from airbyte_cdk.sources.concurrent_source.concurrent_source_adapter import ConcurrentSourceAdapter
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.config import DEFAULT_NUM_WORKERS, MAX_NUM_WORKERS, KlaviyoConfig, parse_config
from source_klaviyo.cursor import build_cursor
from source_klaviyo.errors import key_rejected_message, missing_scopes_message
from source_klaviyo.rate_limits import KlaviyoAPIBudget, build_budget
from source_klaviyo.streams import STREAM_CLASSES, IncrementalKlaviyoStream, KlaviyoStream

logger = logging.getLogger("airbyte")


class SourceKlaviyo(ConcurrentSourceAdapter):
    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        workers = _num_workers(config)
        super().__init__(
            ConcurrentSource.create(
                num_workers=workers,
                initial_number_of_partitions_to_generate=max(1, workers // 2),
                logger=logger,
                slice_logger=self._slice_logger,
                message_repository=self.message_repository,
            )
        )
        self._state: list[AirbyteStateMessage] = []
        self._budget: KlaviyoAPIBudget | None = None

    def configure(self, config: Mapping[str, Any], temp_dir: str) -> Mapping[str, Any]:
        """Validate the config before any command runs, so a bad one ends as one clear config error."""
        parse_config(config)
        return super().configure(config, temp_dir)

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        succeeded, message = self.check_connection(logger, config)
        return AirbyteConnectionStatus(status=Status.SUCCEEDED if succeeded else Status.FAILED, message=message)

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> tuple[bool, str | None]:
        """Probe every stream's endpoint with a one-record page.

        A key that Klaviyo rejects, or that can read none of the streams, fails.
        A key lacking some scopes passes with a warning naming the streams it
        cannot read: least-privilege keys are good practice and the user may not
        select those streams; a read that selects them fails before moving data.
        """
        streams = self._klaviyo_streams(parse_config(config))
        key_accepted, forbidden = _probe_access(streams)
        if not key_accepted:
            return False, key_rejected_message()
        if len(forbidden) == len(streams):
            return False, missing_scopes_message(forbidden)
        if forbidden:
            warning = missing_scopes_message(forbidden)
            logger.warning(warning)
            return True, f"Connected, with a warning: {warning}"
        return True, None

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        state_manager = ConnectorStateManager(state=self._state)
        return [self._as_concurrent(stream, state_manager) for stream in self._klaviyo_streams(parse_config(config))]

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        incremental = {stream.stream.name for stream in catalog.streams if stream.sync_mode == SyncMode.incremental}
        # State only counts for streams read incrementally: a full refresh must not resume from it.
        self._state = [message for message in state or [] if _state_stream_name(message) in incremental]
        selected = {stream.stream.name for stream in catalog.streams}
        self._preflight([stream for stream in self._klaviyo_streams(parse_config(config)) if stream.name in selected])
        yield from super().read(logger, config, catalog, self._state)

    def _klaviyo_streams(self, config: KlaviyoConfig) -> list[KlaviyoStream]:
        if self._budget is None:
            self._budget = build_budget(config.api_url, config.revision)
        now = datetime.now(timezone.utc)
        return [stream_class(config, self._budget, now) for stream_class in STREAM_CLASSES]

    def _as_concurrent(self, stream: KlaviyoStream, state_manager: ConnectorStateManager) -> Stream:
        cursor = None
        if isinstance(stream, IncrementalKlaviyoStream):
            cursor = build_cursor(
                stream.name,
                stream.cursor_field,
                stream.window_start,
                stream.slice_range,
                state_manager,
                self.message_repository,
            )
        return self.convert_to_concurrent_stream(logger, stream, state_manager, cursor)

    @staticmethod
    def _preflight(streams: list[KlaviyoStream]) -> None:
        key_accepted, forbidden = _probe_access(streams)
        if not key_accepted:
            raise AirbyteTracedException(message=key_rejected_message(), failure_type=FailureType.config_error)
        if forbidden:
            raise AirbyteTracedException(
                message=missing_scopes_message(forbidden), failure_type=FailureType.config_error
            )


def _probe_access(streams: list[KlaviyoStream]) -> tuple[bool, MutableMapping[str, str]]:
    """(key accepted, {stream: scope it lacks}); stops at the first 401, since no probe can pass after it."""
    forbidden: MutableMapping[str, str] = {}
    for stream in streams:
        status = stream.probe()
        if status == 401:
            return False, forbidden
        if status == 403:
            forbidden[stream.name] = stream.scope
    return True, forbidden


def _state_stream_name(message: AirbyteStateMessage) -> str | None:
    if message.type == AirbyteStateType.STREAM and message.stream:
        return message.stream.stream_descriptor.name
    return None


def _num_workers(config: Mapping[str, Any] | None) -> int:
    """Concurrency from the raw config; a bad value is reported later by config validation."""
    value = (config or {}).get("num_workers", DEFAULT_NUM_WORKERS)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_NUM_WORKERS:
        return value
    return DEFAULT_NUM_WORKERS
