"""SourceKlaviyo: the four commands (spec, check, discover, read) and their wiring.

Each concern the commands share lives in its own module: the typed config
(config.py), what discover offers and a catalog may ask (catalog.py), what the
account holds that a read needs (account.py), what the key can read (preflight.py),
the state a read is given (incoming_state.py) and the concurrent engine the streams
run in (engine.py). A read parses the config once, checks the catalog, drops the
states it cannot resume from, probes every selected stream, looks up what the
account holds, then builds every stream complete and runs them side by side under
one API budget.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from airbyte_cdk.models import (
    AirbyteCatalog,
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    FailureType,
    Status,
    SyncMode,
)
from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource
from airbyte_cdk.sources.concurrent_source.concurrent_source_adapter import ConcurrentSourceAdapter
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.message.concurrent_repository import ConcurrentMessageRepository
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo import inputs
from source_klaviyo.account import Account
from source_klaviyo.catalog import checked_catalog, offered
from source_klaviyo.clock import Clock, clock_from_environment, command_now
from source_klaviyo.config import CHECK_RETRY_BUDGET, DEFAULT_NUM_WORKERS, KlaviyoConfig, in_current_form, parse_config
from source_klaviyo.engine import QUEUE_SIZE, concurrent_source, concurrent_stream, failures_last
from source_klaviyo.errors import config_error, key_rejected_message
from source_klaviyo.incoming_state import resumable
from source_klaviyo.planning import ReadSlots
from source_klaviyo.preflight import Access, preflight
from source_klaviyo.rate_limits import build_budget
from source_klaviyo.shutdown import StoppingQueue
from source_klaviyo.streams import STREAM_CLASSES, KlaviyoStream, ReadChoices, StreamContext


class SourceKlaviyo(ConcurrentSourceAdapter):
    """Reads the input files through the CDK's hooks, parses the config once (`configure`) and keeps the typed
    model, the command's `now`, the API budget and the account's answers for the rest of the command."""

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
        self._now = command_now(self._clock)
        super().__init__(self._engine(DEFAULT_NUM_WORKERS, planners=1))
        self._settings: KlaviyoConfig | None = None
        self._context: StreamContext | None = None  # what every stream of the command is built from
        self._account: Account | None = None
        self._state: list[AirbyteStateMessage] = []

    @property
    def message_repository(self) -> ConcurrentMessageRepository:
        return self._messages

    # Static and class methods, as the CDK declares them.
    @staticmethod
    def read_config(config_path: str) -> dict[str, Any]:
        return inputs.config_file(config_path)

    @classmethod
    def read_catalog(cls, catalog_path: str) -> ConfiguredAirbyteCatalog:
        return inputs.catalog_file(catalog_path)

    @classmethod
    def read_state(cls, state_path: str) -> list[AirbyteStateMessage]:
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

        A key that Klaviyo rejects, or that can read none of the streams, fails;
        so does Klaviyo not answering within `CHECK_RETRY_BUDGET` of retries.
        A key lacking some scopes passes with a warning naming the streams it
        cannot read: least-privilege keys are good practice and the user may not
        select those streams; a read that selects them fails before moving data.
        """
        settings = self.settings(config)
        settings = settings.model_copy(
            update={"retry_budget_seconds": min(settings.retry_budget_seconds, CHECK_RETRY_BUDGET)}
        )
        account = self._account_of(settings)
        streams = self._klaviyo_streams(settings)
        # Which reports are offered takes a look at the account's metrics: only once the key is accepted.
        counting = [stream for stream in streams if stream.needs_conversion_metric()]
        access = Access.probe([stream for stream in streams if stream not in counting], settings.num_workers)
        if not access.key_accepted:
            return False, key_rejected_message()
        counting = [stream for stream in counting if account.offers(type(stream))]
        access.add(Access.probe(counting, settings.num_workers))
        if not access.readable:
            return False, access.problem()
        reports = any(stream.needs_report_context for stream in streams)
        problems = [
            access.problem(),
            access.include_problem(),
            account.reports_left_out(),
            account.timezone_unreadable() if reports else "",
        ]
        problems = [problem for problem in problems if problem]
        if problems:
            logger.warning(" ".join(problems))
            return True, f"Connected, with a warning: {' '.join(problems)}"
        return True, None

    def discover(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteCatalog:
        """Every stream the config can run (catalog.py)."""
        return offered(super().discover(logger, config), self._account_of(self.settings(config)))

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        state_manager = ConnectorStateManager(state=self._state)
        pages = self._messages if self._record_pages else None
        return [
            concurrent_stream(self, stream, state_manager, self._messages, pages)
            for stream in self._klaviyo_streams(self.settings(config))
        ]

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        """The CDK's concurrent read, ending with one error per stream that failed (see `failures_last`)."""
        settings = self.settings(config)
        account = self._account_of(settings)
        configured = {stream.stream.name: stream for stream in catalog.streams}
        incremental = frozenset(name for name, stream in configured.items() if stream.sync_mode == SyncMode.incremental)
        choices = ReadChoices(checked_catalog(configured, settings), incremental=incremental)
        self._context = replace(self._stream_context(settings), choices=choices)
        selected = [stream for stream in self._klaviyo_streams(settings) if stream.name in configured]
        rules = {stream.name: rule for stream in selected if (rule := stream.resumes())}
        self._state = resumable(state or [], rules, self._now)
        access = preflight(selected, settings.num_workers)
        if access.missing_includes:
            logger.warning(access.include_problem())
            choices = replace(choices, unreadable_includes=frozenset(access.missing_includes))
        selected = [stream for stream in selected if stream.name not in access.unreadable]
        if settings.event_metrics and any(stream.reads_event_metrics for stream in selected):
            choices = replace(choices, event_metric_ids=account.event_metric_ids())
        reports = [type(stream) for stream in selected if stream.needs_report_context]
        if reports:
            choices = replace(choices, reports=account.report_context(reports))
        self._context = replace(self._context, choices=choices, slots=ReadSlots(settings.num_workers))
        self._concurrent_source = self._engine(settings.num_workers, planners=len(selected))
        readable = [stream for stream in catalog.streams if stream.stream.name not in access.unreadable]
        blocked = [stream.stream for stream in catalog.streams if stream.stream.name in access.unreadable]
        messages = super().read(logger, config, ConfiguredAirbyteCatalog(streams=readable), self._state)
        ending = config_error(f"{access.problem()} Every other selected stream was read.") if blocked else None
        yield from failures_last(messages, blocked, ending)

    def _klaviyo_streams(self, config: KlaviyoConfig) -> list[KlaviyoStream]:
        """Every stream the config can run, built complete from the command's context."""
        context = self._stream_context(config)
        return [cls(context) for cls in STREAM_CLASSES if not cls.missing_setting(config)]

    def _stream_context(self, config: KlaviyoConfig) -> StreamContext:
        """The read's context once a read set it, else the command's: one API budget for everything it sends."""
        if self._context is None:
            budget = build_budget(config.api_url, config.revision, config.rate_limit_share)
            self._context = StreamContext(config, budget, self._now)
        return self._context

    def _account_of(self, config: KlaviyoConfig) -> Account:
        if self._account is None:
            self._account = Account(self._stream_context(config))
        return self._account

    def _engine(self, workers: int, planners: int) -> ConcurrentSource:
        return concurrent_source(workers, planners, self.queue, self._messages, self._slice_logger)
