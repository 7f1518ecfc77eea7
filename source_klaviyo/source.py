"""SourceKlaviyo: check, discover and a concurrent read of every Klaviyo stream.

All streams run through the CDK's concurrent engine (ConcurrentSourceAdapter +
StreamFacade): streams read side by side, incremental ones tracked by the
cursors of state.py, events, profiles and exclusions in adaptive windows
(windows.py), per-parent streams one parent a partition (parents.py), in
`num_workers` read slots, and one shared API budget keeps every endpoint under
Klaviyo's limits. Before a read, one probe per selected stream turns a bad key
or a missing scope into a single clear config error before any data moves; a
stream that fails later ends the read with one error of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airbyte_cdk.models import (
    AirbyteCatalog,
    AirbyteConnectionStatus,
    AirbyteErrorTraceMessage,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    FailureType,
    Status,
    SyncMode,
    Type,
)
from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource
from airbyte_cdk.sources.concurrent_source.concurrent_source_adapter import ConcurrentSourceAdapter
from airbyte_cdk.sources.concurrent_source.thread_pool_manager import ThreadPoolManager
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.message.concurrent_repository import ConcurrentMessageRepository
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.streams.concurrent.adapters import StreamFacade
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor, CursorField, FinalStateCursor
from airbyte_cdk.sources.streams.concurrent.default_stream import DefaultStream
from airbyte_cdk.sources.streams.concurrent.partitions.partition_generator import PartitionGenerator
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo import inputs
from source_klaviyo.clock import Clock, clock_from_environment, command_now
from source_klaviyo.config import DEFAULT_NUM_WORKERS, MIN_RETRY_BUDGET, KlaviyoConfig, in_current_form, parse_config
from source_klaviyo.errors import StreamFailed, key_rejected_message, missing_scopes_message
from source_klaviyo.incoming_state import Resumes, resumable
from source_klaviyo.parents import ParentPlanner
from source_klaviyo.planning import ReadSlots
from source_klaviyo.rate_limits import KlaviyoAPIBudget, build_budget
from source_klaviyo.shutdown import StoppingQueue
from source_klaviyo.state import ParentCursor, ReportCursor, build_cursor
from source_klaviyo.streams import (
    STREAM_CLASSES,
    ChildStream,
    Events,
    EventsCustomDates,
    IncrementalKlaviyoStream,
    KlaviyoStream,
    MetricAggregates,
    Metrics,
    Profiles,
    ReportContext,
    ReportStream,
    WindowedKlaviyoStream,
)
from source_klaviyo.streams.profiles import PROFILE_CURSORS
from source_klaviyo.streams.reports import SENT_METRICS
from source_klaviyo.streams.resources import Accounts
from source_klaviyo.windows import WindowPlanner

logger = logging.getLogger("airbyte")
QUEUE_SIZE = 10_000  # records, states and partitions in flight between the workers and stdout (the CDK's default)
# Partitions submitted and not yet pruned. The CDK prunes finished ones only once this many are listed (its
# default 10,000): with a page per partition, every finished page's future stayed until 10M events.
MAX_PENDING_PARTITIONS = 500


@dataclass(frozen=True)
class ReadChoices:
    """What a read's configured catalog decides about the streams."""

    profiles_cursor: str = "created"
    event_metric_ids: tuple[str | None, ...] = (None,)
    incremental: frozenset[str] = frozenset()  # the streams read incrementally
    slots: ReadSlots | None = None  # the read's num_workers slots, shared by every stream
    reports: ReportContext | None = None  # the account's timezone and metrics, when a report is selected


@dataclass(frozen=True)
class ConversionMetric:
    """The metric campaign and flow reports count conversions of, or why there is none."""

    metric_id: str | None
    why_none: str = ""
    sent_metric_ids: tuple[str, ...] = ()


class SourceKlaviyo(ConcurrentSourceAdapter):
    """Reads the input files through the CDK's hooks, parses the config once (`configure`) and keeps
    the typed model, the command's `now` and the API budget for the rest of the command."""

    def __init__(self, clock: Clock | None = None, record_pages: bool = False) -> None:
        """`record_pages`: partitions send records a page at a time, for KlaviyoEntrypoint to write (protocol.py)."""
        self._clock = clock or clock_from_environment()
        self._record_pages = record_pages
        # A worker closes its window (and its cursor emits STATE) right after queueing the window's
        # records. Emitted through the source's default repository, that STATE reaches stdout with the
        # next record the main thread prints, ahead of records still queued: a kill then would commit
        # state past records never delivered. Through the records' own queue, STATE follows them; on
        # SIGTERM, that queue ends the read where the last STATE printed covers what was printed.
        self.queue = StoppingQueue(maxsize=QUEUE_SIZE)
        self._messages = ConcurrentMessageRepository(self.queue, InMemoryMessageRepository())
        self._settings: KlaviyoConfig | None = None
        self._now = command_now(self._clock)
        super().__init__(self._engine(DEFAULT_NUM_WORKERS, planners=1))
        self._state: list[AirbyteStateMessage] = []
        self._choices = ReadChoices()
        self._budget: KlaviyoAPIBudget | None = None
        self._conversion: ConversionMetric | None = None
        # Set once discover or check could not reach the account's metrics: they do not ask again.
        self._metrics_unreachable = False

    @property
    def message_repository(self) -> ConcurrentMessageRepository:
        return self._messages

    def read_config(self, config_path: str) -> dict[str, Any]:  # type: ignore[override]
        return inputs.config_file(config_path)

    def read_catalog(self, catalog_path: str) -> ConfiguredAirbyteCatalog:  # type: ignore[override]
        return inputs.catalog_file(catalog_path)

    def read_state(self, state_path: str) -> list[AirbyteStateMessage]:  # type: ignore[override]
        return inputs.state_file(state_path)

    def configure(self, config: Mapping[str, Any], temp_dir: str) -> Mapping[str, Any]:
        """Parse the config once, before any command runs: a bad one ends as one clear config error."""
        self._now = command_now(self._clock)
        self._settings = parse_config(config, self._now)
        return super().configure(in_current_form(config), temp_dir)

    def settings(self, config: Mapping[str, Any]) -> KlaviyoConfig:
        """The typed config (parsed by `configure`, or here when a caller skipped it)."""
        if self._settings is None:
            self._settings = parse_config(config, self._now)
        return self._settings

    def _engine(self, workers: int, planners: int) -> ConcurrentSource:
        """The CDK's engine with a thread per stream planning its partitions (they mostly wait for running ones)
        besides `workers` threads to read them; partitions read in the read's `workers` slots."""
        threads = ThreadPoolExecutor(max_workers=workers + planners, thread_name_prefix="workerpool")
        return ConcurrentSource(
            ThreadPoolManager(threads, logger, max_concurrent_tasks=MAX_PENDING_PARTITIONS),
            logger,
            self._slice_logger,
            self.queue,
            self._messages,
            initial_number_partitions_to_generate=planners,
        )

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """One CONNECTION_STATUS, whatever happens: when Klaviyo cannot be reached, FAILED says why (the CDK would
        print the error as a TRACE, raise it, and print it again, with no status)."""
        try:
            succeeded, message = self.check_connection(logger, config)
        except AirbyteTracedException as error:
            if error.failure_type == FailureType.config_error:
                raise
            succeeded, message = False, filter_secrets(error.message or str(error))
        return AirbyteConnectionStatus(status=Status.SUCCEEDED if succeeded else Status.FAILED, message=message)

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> tuple[bool, str | None]:
        """Probe every stream's endpoint with a one-record page.

        A key that Klaviyo rejects, or that can read none of the streams, fails.
        A key lacking some scopes passes with a warning naming the streams it
        cannot read: least-privilege keys are good practice and the user may not
        select those streams; a read that selects them fails before moving data.
        """
        settings = self.settings(config)
        streams = self._klaviyo_streams(settings)
        # Which reports are offered takes a look at the account's metrics: only once the key is accepted.
        counting = [
            stream for stream in streams if isinstance(stream, ReportStream) and stream.needs_conversion_metric()
        ]
        access = Access.probe([stream for stream in streams if stream not in counting], settings.num_workers)
        if not access.key_accepted:
            return False, key_rejected_message()
        streams = [stream for stream in streams if stream not in counting or self._offered(type(stream), settings)]
        access.add(Access.probe([stream for stream in streams if stream in counting], settings.num_workers))
        if not access.readable:
            return False, access.problem()
        problems = [access.problem()] if access.unreadable else []
        problems += [self._reports_left_out(settings)] if self._reports_left_out(settings) else []
        if any(isinstance(stream, ReportStream) for stream in streams) and self._account_unreadable(settings):
            problems.append(self._account_unreadable(settings))
        if problems:
            logger.warning(" ".join(problems))
            return True, f"Connected, with a warning: {' '.join(problems)}"
        return True, None

    def _reports_left_out(self, config: KlaviyoConfig) -> str:
        """Why campaign and flow reports are not offered ("" when they are, or the revision has none)."""
        left_out = [
            cls.name
            for cls in STREAM_CLASSES
            if issubclass(cls, ReportStream) and not cls.missing_setting(config) and not self._offered(cls, config)
        ]
        if not left_out:
            return ""
        return (
            f"{', '.join(left_out)} are not offered: {self._conversion_metric(config).why_none} "
            "Set `conversion_metric` to the metric they count as a conversion (its id or name)."
        )

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        state_manager = ConnectorStateManager(state=self._state)
        settings = self.settings(config)
        return [self._as_concurrent(stream, state_manager, settings) for stream in self._klaviyo_streams(settings)]

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        """The CDK's concurrent read, ending with one error per stream that failed (see `failures_last`)."""
        settings = self.settings(config)
        configured = {stream.stream.name: stream for stream in catalog.streams}
        incremental = frozenset(name for name, stream in configured.items() if stream.sync_mode == SyncMode.incremental)
        self._choices = ReadChoices(_checked_catalog(configured, settings), incremental=incremental)
        selected = [stream for stream in self._klaviyo_streams(settings) if stream.name in configured]
        self._state = resumable(state or [], resume_rules(selected, incremental), self._now)
        self._preflight(selected, settings.num_workers)
        metric_ids = (
            self._metric_ids(settings)
            if settings.event_metrics and any(isinstance(stream, Events) for stream in selected)
            else (None,)
        )
        reports = [stream for stream in selected if isinstance(stream, ReportStream)]
        self._choices = replace(
            self._choices,
            event_metric_ids=metric_ids,
            slots=ReadSlots(settings.num_workers),
            reports=self._report_context(settings, reports) if reports else None,
        )
        self._concurrent_source = self._engine(settings.num_workers, planners=len(selected))
        yield from failures_last(super().read(logger, config, catalog, self._state))

    def _klaviyo_streams(self, config: KlaviyoConfig) -> list[KlaviyoStream]:
        if self._budget is None:
            self._budget = build_budget(config.api_url, config.revision)
        streams: list[KlaviyoStream] = []
        for stream_class in STREAM_CLASSES:
            if stream_class.missing_setting(config):
                continue
            if stream_class is Profiles:
                streams.append(
                    Profiles(config, self._budget, self._now, self._choices.slots, self._choices.profiles_cursor)
                )
                continue
            stream = stream_class(config, self._budget, self._now, self._choices.slots)
            if isinstance(stream, Events):
                stream.variants = self._choices.event_metric_ids
            if isinstance(stream, ReportStream):
                stream.context = self._choices.reports
            streams.append(stream)
        return streams

    def discover(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteCatalog:
        """Every stream the config can run: campaign and flow reports only with a conversion metric to count."""
        catalog = super().discover(logger, config)
        offered = {cls.name for cls in STREAM_CLASSES if self._offered(cls, self.settings(config))}
        catalog.streams = [stream for stream in catalog.streams if stream.name in offered]
        # Per-parent streams resume an interrupted full refresh parent by parent; the CDK only knows cursor streams do.
        resumable = {cls.name for cls in STREAM_CLASSES if cls.resumes_full_refresh}
        for stream in catalog.streams:
            stream.is_resumable = stream.is_resumable or stream.name in resumable
        return catalog

    def _offered(self, stream_class: type[KlaviyoStream], config: KlaviyoConfig) -> bool:
        """Campaign and flow reports are offered when there is a conversion metric to count."""
        if not (issubclass(stream_class, ReportStream) and stream_class.needs_conversion_metric()):
            return True
        if config.conversion_metric or self._metrics_unreachable:
            return True
        try:
            return self._conversion_metric(config, quick=True).metric_id is not None
        except AirbyteTracedException as error:
            if error.failure_type == FailureType.config_error:
                raise
            # Klaviyo unreachable is no reason to hide streams: offer them, and let a read look again.
            self._metrics_unreachable = True
            logger.warning(
                f"Could not look up the account's metrics ({error.message}); the campaign and flow reports "
                "are offered, and a read checks their conversion metric."
            )
            return True

    def _conversion_metric(self, config: KlaviyoConfig, quick: bool = False) -> ConversionMetric:
        """`conversion_metric` (a metric id or name), else the account's "Placed Order"; read once per command.
        `quick`: retried for the shortest budget only (discover and check must not wait out an outage)."""
        if self._conversion is not None:
            return self._conversion
        settings = config.model_copy(update={"retry_budget_seconds": MIN_RETRY_BUDGET}) if quick else config
        metrics = Metrics(settings, self._budget, self._now)
        if metrics.probe() in (401, 403):
            self._conversion = ConversionMetric(None, f"the key cannot read metrics (it needs {metrics.scope}).")
            return self._conversion
        known = [(record["id"], record.get("name")) for record in metrics.read_records(SyncMode.full_refresh)]
        wanted = config.conversion_metric or "Placed Order"
        matching = [metric_id for metric_id, name in known if wanted in (metric_id, name)]
        sent = tuple(metric_id for metric_id, name in known if name in SENT_METRICS)
        if matching:
            if len(matching) > 1:
                logger.info(f"Reports count conversions of {matching[0]}, the first of the metrics named {wanted!r}.")
            self._conversion = ConversionMetric(matching[0], "", sent)
        elif config.conversion_metric:
            names = ", ".join(sorted({name for _, name in known if name})[:40])
            raise _config_error(
                f"`conversion_metric` is {wanted!r}, which is no metric id or name of this account. Metrics: {names}."
            )
        else:
            self._conversion = ConversionMetric(None, 'the account has no "Placed Order" metric.', sent)
        return self._conversion

    def _account_unreadable(self, config: KlaviyoConfig) -> str:
        """Why the reports cannot learn the account's timezone ("" when they can)."""
        accounts = Accounts(config, self._budget, self._now)
        if accounts.probe() not in (401, 403):
            return ""
        return missing_scopes_message({"the report streams (for the account's timezone)": accounts.scope})

    def _report_context(self, config: KlaviyoConfig, reports: list[ReportStream]) -> ReportContext:
        """The account's timezone (Klaviyo's report days are its days) and, for campaign and flow reports,
        the conversion metric and the metrics of sent messages."""
        unreadable = self._account_unreadable(config)
        if unreadable:
            raise _config_error(unreadable)
        account = next(iter(Accounts(config, self._budget, self._now).read_records(SyncMode.full_refresh)), {})
        try:
            zone = ZoneInfo(account.get("timezone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning(f"The account's timezone {account.get('timezone')!r} is unknown here; reports use UTC.")
            zone = ZoneInfo("UTC")
        if not any(report.needs_conversion_metric() for report in reports):
            return ReportContext(zone)
        conversion = self._conversion_metric(config)
        if conversion.metric_id is None:
            names = ", ".join(report.name for report in reports if report.needs_conversion_metric())
            raise _config_error(
                f"The catalog selects {names}, which need a conversion metric: {conversion.why_none} "
                "Set `conversion_metric`, or refresh the source schema and deselect them."
            )
        return ReportContext(zone, conversion.metric_id, conversion.sent_metric_ids)

    def _as_concurrent(
        self, stream: KlaviyoStream, state_manager: ConnectorStateManager, config: KlaviyoConfig
    ) -> Stream:
        """The stream in the CDK's concurrent engine: windowed and per-parent streams through our planners,
        the others through the CDK's facade over their slices."""
        if isinstance(stream, ReportStream):
            progress = ReportCursor(stream.name, stream.cursor_field, state_manager, self.message_repository, self._now)
            return self.convert_to_concurrent_stream(logger, stream, state_manager, progress)
        if isinstance(stream, ChildStream):
            cursor: Cursor = ParentCursor(
                stream_name=stream.name,
                parent_field=stream.parent_field,
                cursor_field=(stream.cursor_field or None) if stream.name in self._choices.incremental else None,
                state_manager=state_manager,
                message_repository=self.message_repository,
                now=self._now,
                first_sync_start=stream.window_start,
                start_date=config.start_date,
            )
            planner: PartitionGenerator = ParentPlanner(
                stream, cursor, config.num_workers, self._choices.slots, self._pages
            )
            return self._facade(stream, planner, cursor, stream.cursor_field or None)
        date_cursor: Cursor | None = None
        if isinstance(stream, MetricAggregates) and stream.name in self._choices.incremental:
            # One partition per query, each with its newest interval read; the stream re-reads from there.
            date_cursor = ParentCursor(
                stream_name=stream.name,
                parent_field=stream.parent_field,
                cursor_field=stream.cursor_field,
                state_manager=state_manager,
                message_repository=self.message_repository,
                now=self._now,
            )
        elif isinstance(stream, IncrementalKlaviyoStream) and not isinstance(stream, EventsCustomDates):
            lookback = timedelta(hours=config.event_lookback_hours) if isinstance(stream, Events) else None
            date_cursor = build_cursor(
                stream.name,
                stream.cursor_field,
                stream.window_start,
                config.start_date,
                state_manager,
                self.message_repository,
                self._now,
                lookback,
            )
        if not isinstance(stream, WindowedKlaviyoStream):
            return self.convert_to_concurrent_stream(logger, stream, state_manager, date_cursor)
        cursor = date_cursor or FinalStateCursor(stream.name, None, self.message_repository)
        stream.cursor = cursor
        planner = WindowPlanner(stream, stream.ranges(), config.num_workers, self._choices.slots, self._pages)
        return self._facade(stream, planner, cursor, stream.cursor_field if date_cursor else None)

    @property
    def _pages(self) -> ConcurrentMessageRepository | None:
        """Where planned partitions send record pages (None: a Record each, for in-process callers)."""
        return self._messages if self._record_pages else None

    def _facade(
        self, stream: KlaviyoStream, planner: PartitionGenerator, cursor: Cursor, cursor_field: str | None
    ) -> Stream:
        catalog_cursor = getattr(stream, "catalog_defined_cursor", False)
        field = (
            CursorField(cursor_field, supports_catalog_defined_cursor_field=catalog_cursor) if cursor_field else None
        )
        keys = [stream.primary_key] if isinstance(stream.primary_key, str) else list(stream.primary_key)
        default_stream = DefaultStream(planner, stream.name, stream.get_json_schema, keys, field, logger, cursor)
        return StreamFacade(default_stream, stream, cursor, slice_logger=self._slice_logger, logger=logger)

    def _metric_ids(self, config: KlaviyoConfig) -> tuple[str, ...]:
        """The ids `event_metrics` names: each entry is a metric id or a metric name (all metrics of that name)."""
        metrics = Metrics(config, self._budget, self._now)
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
    def _preflight(streams: list[KlaviyoStream], workers: int) -> None:
        access = Access.probe(streams, workers)
        if not access.key_accepted:
            raise _config_error(key_rejected_message())
        if access.unreadable:
            raise _config_error(access.problem())


def resume_rules(streams: list[KlaviyoStream], incremental: frozenset[str]) -> dict[str, Resumes]:
    """How each selected stream resumes from its state; streams read in full and not per parent do not."""
    rules = {}
    for stream in streams:
        cursor_field = (stream.cursor_field or None) if stream.name in incremental else None
        if isinstance(stream, ChildStream) or (isinstance(stream, MetricAggregates) and cursor_field):
            rules[stream.name] = Resumes(cursor_field, stream.parent_field)
        elif isinstance(stream, ReportStream) and cursor_field:
            rules[stream.name] = Resumes(cursor_field)
        elif (
            isinstance(stream, IncrementalKlaviyoStream) and cursor_field and not isinstance(stream, EventsCustomDates)
        ):
            rules[stream.name] = Resumes(cursor_field)
    return rules


def failures_last(messages: Iterator[AirbyteMessage]) -> Iterator[AirbyteMessage]:
    """The read's messages, with each failed stream's error held back to the end and sent once.

    The CDK sends an error per failed partition as it happens, then raises a combined
    config error. Here every record and state that completed goes out first; then
    one error per failed stream (the first it raised, its secrets masked), the last
    raised so the command exits non-zero.
    """
    failed: dict[str, AirbyteMessage] = {}
    try:
        for message in messages:
            if message.type == Type.TRACE and message.trace.error:
                _mask_secrets(message.trace.error)
                descriptor = message.trace.error.stream_descriptor
                if descriptor is not None:
                    failed.setdefault(descriptor.name, message)
                    continue
            yield message
    except AirbyteTracedException:
        if not failed:
            raise  # not the CDK's summary of failed streams: a failure of the read itself
    if failed:
        *first, last = failed.values()
        yield from first
        raise StreamFailed(last)


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
    for stream_class in STREAM_CLASSES:
        missing = stream_class.name in configured and stream_class.missing_setting(config)
        if missing:
            raise _config_error(
                f"The catalog selects the {stream_class.name} stream, which needs {missing} in the config: "
                "set it, or refresh the source schema and deselect the stream."
            )
    return cursor[0]


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
    def probe(cls, streams: list[KlaviyoStream], workers: int) -> Access:
        """The first probe alone (after a 401 no probe can pass), then the others side by side."""
        if not streams:
            return cls()
        first = streams[0].probe()
        if first == 401:
            return cls(key_accepted=False)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
            statuses = [first, *pool.map(lambda stream: stream.probe(), streams[1:])]
        if 401 in statuses:
            return cls(key_accepted=False)
        access = cls()
        for stream, status in zip(streams, statuses, strict=True):
            if status == 403:
                access.missing_scopes[stream.name] = stream.scope
            elif status == 410:
                access.retired[stream.name] = stream.retired_message()
            elif status is not None:
                access.readable.add(stream.name)
        return access

    def add(self, other: Access) -> None:
        self.readable |= other.readable
        self.missing_scopes.update(other.missing_scopes)
        self.retired.update(other.retired)

    @property
    def unreadable(self) -> set[str]:
        return {*self.missing_scopes, *self.retired}

    def problem(self) -> str:
        parts = [missing_scopes_message(self.missing_scopes)] if self.missing_scopes else []
        return " ".join(parts + sorted(set(self.retired.values())))
