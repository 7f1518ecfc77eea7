"""SourceKlaviyo: check, discover and a concurrent read of every Klaviyo stream.

All streams run through the CDK's concurrent engine (ConcurrentSourceAdapter +
StreamFacade): streams read side by side, incremental ones tracked by a
ConcurrentCursor, events and profiles in adaptive windows (windows.py), and
one shared API budget keeps every endpoint under Klaviyo's limits. Before a
read, one probe per selected stream turns a bad key or a missing scope into a
single clear config error before any data moves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from queue import Queue
from typing import Any

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteErrorTraceMessage,
    AirbyteMessage,
    AirbyteStateMessage,
    AirbyteStateType,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    FailureType,
    Status,
    SyncMode,
    Type,
)
from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource
from airbyte_cdk.sources.concurrent_source.concurrent_source_adapter import ConcurrentSourceAdapter
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.message.concurrent_repository import ConcurrentMessageRepository
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.streams.concurrent.adapters import StreamFacade
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor, CursorField, FinalStateCursor
from airbyte_cdk.sources.streams.concurrent.default_stream import DefaultStream
from airbyte_cdk.sources.streams.concurrent.partitions.types import QueueItem
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.config import DEFAULT_NUM_WORKERS, MAX_NUM_WORKERS, KlaviyoConfig, parse_config
from source_klaviyo.cursor import build_cursor, parse_klaviyo_datetime
from source_klaviyo.errors import key_rejected_message, missing_scopes_message
from source_klaviyo.rate_limits import KlaviyoAPIBudget, build_budget
from source_klaviyo.streams import (
    STREAM_CLASSES,
    Events,
    EventsCustomDates,
    IncrementalKlaviyoStream,
    KlaviyoStream,
    MetricAggregates,
    Metrics,
    Profiles,
    WindowedKlaviyoStream,
)
from source_klaviyo.streams.profiles import PROFILE_CURSORS
from source_klaviyo.windows import WindowPlanner

logger = logging.getLogger("airbyte")
QUEUE_SIZE = 10_000  # records, states and partitions in flight between the workers and stdout (the CDK's default)


@dataclass(frozen=True)
class ReadChoices:
    """What a read's configured catalog decides about the streams."""

    profiles_cursor: str = "created"
    event_metric_ids: tuple[str | None, ...] = (None,)


class SourceKlaviyo(ConcurrentSourceAdapter):
    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self._workers = _num_workers(config)
        # A worker closes its window (and its cursor emits STATE) right after queueing the window's
        # records. Emitted through the source's default repository, that STATE reaches stdout with the
        # next record the main thread prints, ahead of records still queued: a kill then would commit
        # state past records never delivered. Through the records' own queue, STATE follows them.
        queue: Queue[QueueItem] = Queue(maxsize=QUEUE_SIZE)
        self._messages = ConcurrentMessageRepository(queue, InMemoryMessageRepository())
        super().__init__(
            ConcurrentSource.create(
                num_workers=self._workers,
                initial_number_of_partitions_to_generate=max(1, self._workers // 2),
                logger=logger,
                slice_logger=self._slice_logger,
                message_repository=self._messages,
                queue=queue,
            )
        )
        self._state: list[AirbyteStateMessage] = []
        self._choices = ReadChoices()
        self._budget: KlaviyoAPIBudget | None = None

    @property
    def message_repository(self) -> ConcurrentMessageRepository:
        return self._messages

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
        access = Access.probe(streams)
        if not access.key_accepted:
            return False, key_rejected_message()
        if not access.readable:
            return False, access.problem()
        if access.unreadable:
            logger.warning(access.problem())
            return True, f"Connected, with a warning: {access.problem()}"
        return True, None

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        state_manager = ConnectorStateManager(state=self._state)
        klaviyo_config = parse_config(config)
        return [
            self._as_concurrent(stream, state_manager, klaviyo_config)
            for stream in self._klaviyo_streams(klaviyo_config)
        ]

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        klaviyo_config = parse_config(config)
        configured = {stream.stream.name: stream for stream in catalog.streams}
        self._choices = ReadChoices(profiles_cursor=_checked_catalog(configured, klaviyo_config))
        selected = [stream for stream in self._klaviyo_streams(klaviyo_config) if stream.name in configured]
        self._state = _usable_state(state or [], configured, selected)
        self._preflight(selected)
        if klaviyo_config.event_metrics and any(isinstance(stream, Events) for stream in selected):
            self._choices = ReadChoices(self._choices.profiles_cursor, self._metric_ids(klaviyo_config))
        for message in super().read(logger, config, catalog, self._state):
            if message.type == Type.TRACE and message.trace.error:
                _mask_secrets(message.trace.error)
            yield message

    def _klaviyo_streams(self, config: KlaviyoConfig) -> list[KlaviyoStream]:
        if self._budget is None:
            self._budget = build_budget(config.api_url, config.revision)
        now = datetime.now(timezone.utc)
        streams: list[KlaviyoStream] = []
        for stream_class in STREAM_CLASSES:
            if stream_class is Profiles:
                streams.append(Profiles(config, self._budget, now, cursor_field=self._choices.profiles_cursor))
                continue
            stream = stream_class(config, self._budget, now)
            if isinstance(stream, Events):
                stream.variants = self._choices.event_metric_ids
            streams.append(stream)
        return streams

    def _as_concurrent(
        self, stream: KlaviyoStream, state_manager: ConnectorStateManager, config: KlaviyoConfig
    ) -> Stream:
        if not isinstance(stream, WindowedKlaviyoStream):
            cursor = None
            if isinstance(stream, IncrementalKlaviyoStream):
                cursor = build_cursor(
                    stream.name, stream.cursor_field, stream.window_start, state_manager, self.message_repository
                )
            return self.convert_to_concurrent_stream(logger, stream, state_manager, cursor)
        cursor_field = None
        cursor: Cursor
        if isinstance(stream, EventsCustomDates):
            cursor = FinalStateCursor(stream.name, None, self.message_repository)
        else:
            lookback = timedelta(hours=config.event_lookback_hours) if isinstance(stream, Events) else None
            cursor = build_cursor(
                stream.name, stream.cursor_field, stream.window_start, state_manager, self.message_repository, lookback
            )
            cursor_field = CursorField(
                stream.cursor_field, supports_catalog_defined_cursor_field=stream.catalog_defined_cursor
            )
        stream.cursor = cursor
        planner = WindowPlanner(stream, stream.ranges(), self._workers)
        default_stream = DefaultStream(
            planner, stream.name, stream.get_json_schema, ["id"], cursor_field, logger, cursor
        )
        return StreamFacade(default_stream, stream, cursor, slice_logger=self._slice_logger, logger=logger)

    def _metric_ids(self, config: KlaviyoConfig) -> tuple[str, ...]:
        """The ids `event_metrics` names: each entry is a metric id or a metric name (all metrics of that name)."""
        metrics = Metrics(config, self._budget)
        if metrics.probe() in (401, 403):
            raise _config_error(missing_scopes_message({"event_metrics (to look up metric names)": metrics.scope}))
        known = [(record["id"], record.get("name")) for record in metrics.read_records(SyncMode.full_refresh)]
        ids = []
        for wanted in config.event_metrics:
            matching = [metric_id for metric_id, name in known if wanted in (metric_id, name)]
            if not matching:
                names = ", ".join(sorted({name for _, name in known if name})[:40])
                raise _config_error(
                    f"`event_metrics` lists {wanted!r}, which is no metric id or name of this account. "
                    f"Metrics: {names}."
                )
            ids += [metric_id for metric_id in matching if metric_id not in ids]
        return tuple(ids)

    @staticmethod
    def _preflight(streams: list[KlaviyoStream]) -> None:
        access = Access.probe(streams)
        if not access.key_accepted:
            raise _config_error(key_rejected_message())
        if access.unreadable:
            raise _config_error(access.problem())


def _mask_secrets(error: AirbyteErrorTraceMessage) -> None:
    """The CDK masks secrets in logs but not in the error traces it builds for failed streams,
    whose texts can hold a URL (v1 carries the key in it)."""
    for name in ("message", "internal_message", "stack_trace"):
        text = getattr(error, name)
        if text:
            setattr(error, name, filter_secrets(text))


def _checked_catalog(configured: Mapping[str, ConfiguredAirbyteStream], config: KlaviyoConfig) -> str:
    """The profiles cursor the catalog chose, once the catalog asks only for what can be read."""
    unknown = sorted(set(configured) - {stream_class.name for stream_class in STREAM_CLASSES})
    if unknown:
        known = ", ".join(stream_class.name for stream_class in STREAM_CLASSES)
        raise _config_error(
            f"The catalog selects streams this connector does not have: {', '.join(unknown)}. "
            f"Refresh the source schema or deselect them (streams: {known})."
        )
    profiles = configured.get(Profiles.name)
    cursor = (
        (profiles.cursor_field or ["created"])
        if profiles and profiles.sync_mode == SyncMode.incremental
        else ["created"]
    )
    if cursor not in ([name] for name in PROFILE_CURSORS):
        raise _config_error(f"The profiles stream can use `created` or `updated` as its cursor, not {cursor}.")
    if EventsCustomDates.name in configured and config.events_custom_dates is None:
        raise _config_error(
            "The events_custom_dates stream is selected but `events_custom_dates` (start and end) is not set: "
            "set both, or deselect the stream."
        )
    if MetricAggregates.name in configured and not config.metric_aggregates:
        raise _config_error(
            "The metric_aggregates stream is selected but `metric_aggregates` holds no query: "
            "set one, or deselect the stream."
        )
    return cursor[0]


def _usable_state(
    messages: list[AirbyteStateMessage],
    configured: Mapping[str, ConfiguredAirbyteStream],
    streams: list[KlaviyoStream],
) -> list[AirbyteStateMessage]:
    """The state of streams read incrementally, where it holds what their cursor can resume from.

    A full refresh must not resume from state. A state without a usable cursor value (another
    cursor's, or not a datetime) is dropped with a warning: that stream is read from its backfill
    window, as on a first sync, which re-reads but never loses records.
    """
    cursors = {stream.name: stream.cursor_field for stream in streams if isinstance(stream, IncrementalKlaviyoStream)}
    usable = []
    for message in messages:
        name = _state_stream_name(message)
        if name not in cursors or configured[name].sync_mode != SyncMode.incremental:
            continue
        problem = _state_problem(dict(message.stream.stream_state.__dict__), cursors[name])
        if problem:
            logger.warning(f"Ignoring the state of stream {name}: {problem}. It is read from its backfill window.")
            continue
        usable.append(message)
    return usable


def _state_problem(state: Mapping[str, Any], cursor: str) -> str | None:
    if "state_type" in state:  # the CDK's concurrent shape: {"state_type": "date-range", "slices": [...]}
        slices = state.get("slices")
        values = [piece.get(key) for piece in slices or [] if isinstance(piece, Mapping) for key in ("start", "end")]
        if not slices or len(values) != 2 * len(slices) or not all(_is_datetime(value) for value in values):
            return "its date-range slices are not all {start, end} datetimes"
        return None
    if cursor not in state:
        return f"it has no `{cursor}` value (it holds {sorted(state) or 'nothing'})"
    if not _is_datetime(state[cursor]):
        return f"its `{cursor}` is {state[cursor]!r}, not a datetime"
    return None


def _is_datetime(value: Any) -> bool:
    try:
        parse_klaviyo_datetime(value)
        return True
    except (TypeError, ValueError, AttributeError):
        return False


def _config_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, failure_type=FailureType.config_error)


@dataclass
class Access:
    """What the key can read, from one probe per stream."""

    key_accepted: bool = True
    readable: set[str] = field(default_factory=set)
    missing_scopes: dict[str, str] = field(default_factory=dict)  # stream -> the scope it needs
    retired: dict[str, str] = field(default_factory=dict)  # stream -> what its 410 means

    @classmethod
    def probe(cls, streams: list[KlaviyoStream]) -> Access:
        """Stops at the first 401: no probe can pass after it."""
        access = cls()
        for stream in streams:
            status = stream.probe()
            if status == 401:
                return cls(key_accepted=False)
            if status == 403:
                access.missing_scopes[stream.name] = stream.scope
            elif status == 410:
                access.retired[stream.name] = stream.retired_message()
            elif status is not None:
                access.readable.add(stream.name)
        return access

    @property
    def unreadable(self) -> set[str]:
        return {*self.missing_scopes, *self.retired}

    def problem(self) -> str:
        parts = [missing_scopes_message(self.missing_scopes)] if self.missing_scopes else []
        return " ".join(parts + sorted(set(self.retired.values())))


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
