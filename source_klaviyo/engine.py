"""The read engine, assembled from the CDK's concurrent parts: a thread pool, the queue every message passes in
order, and each stream as a concurrent stream with the cursor and partitions it declares (streams/base.py).

Partitions come from the connector's planners (windows.py, parents.py) where the stream names one, else from the
CDK's own facade over the stream's slices. `failures_last` ends a read with one error per failed stream.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from queue import Queue

from airbyte_cdk.models import AirbyteErrorTraceMessage, AirbyteMessage, AirbyteStream, AirbyteStreamStatus, Type
from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource
from airbyte_cdk.sources.concurrent_source.concurrent_source_adapter import ConcurrentSourceAdapter
from airbyte_cdk.sources.concurrent_source.thread_pool_manager import ThreadPoolManager
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.streams.concurrent.adapters import StreamFacade
from airbyte_cdk.sources.streams.concurrent.cursor import CursorField, FinalStateCursor
from airbyte_cdk.sources.streams.concurrent.default_stream import DefaultStream
from airbyte_cdk.sources.streams.concurrent.helpers import get_cursor_field_from_stream, get_primary_key_from_stream
from airbyte_cdk.sources.streams.concurrent.partitions.types import QueueItem
from airbyte_cdk.sources.utils.slice_logger import SliceLogger
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as stream_status_as_airbyte_message
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.errors import StreamFailed
from source_klaviyo.streams import KlaviyoStream

logger = logging.getLogger("airbyte")
# The logger of the engine's main loop. The CDK logs each failed partition's exception there, with its traceback,
# at ERROR (ConcurrentReadProcessor.on_exception), and then sends it as the stream's error TRACE: a stream whose
# windows failed one by one logged a traceback per window. failures_last sends one TRACE per stream and logs its
# traceback at DEBUG, so the loop's records with a traceback are left out.
engine_logger = logging.getLogger("airbyte.engine")
engine_logger.addFilter(lambda record: record.exc_info is None)
QUEUE_SIZE = 10_000  # records, states and partitions in flight between the workers and stdout (the CDK's default)
# Partitions submitted and not yet pruned. The CDK prunes finished ones only once this many are listed (its
# default 10,000): with a page per partition, every finished page's future stayed until 10M events.
MAX_PENDING_PARTITIONS = 500


def concurrent_source(
    workers: int, planners: int, queue: Queue[QueueItem], repository: MessageRepository, slice_logger: SliceLogger
) -> ConcurrentSource:
    """The CDK's engine with a thread per stream planning its partitions (they mostly wait for running ones)
    besides `workers` threads to read them; partitions read in the read's `workers` slots."""
    threads = ThreadPoolExecutor(max_workers=workers + planners, thread_name_prefix="workerpool")
    return ConcurrentSource(
        ThreadPoolManager(threads, logger, max_concurrent_tasks=MAX_PENDING_PARTITIONS),
        engine_logger,
        slice_logger,
        queue,
        repository,
        initial_number_partitions_to_generate=planners,
    )


def concurrent_stream(
    source: ConcurrentSourceAdapter,
    stream: KlaviyoStream,
    state_manager: ConnectorStateManager,
    repository: MessageRepository,
    pages: MessageRepository | None,
) -> Stream:
    """`stream` in the concurrent engine, with the cursor and partitions it declares; `pages`: where planned
    partitions send their records a page at a time (None: a Record each, for in-process callers)."""
    cursor = stream.concurrent_cursor(state_manager, repository)
    kept = cursor or FinalStateCursor(stream.name, None, repository)
    planner = stream.planner(kept, pages)
    if planner is None:
        return source.convert_to_concurrent_stream(logger, stream, state_manager, cursor)
    # The cursor field and keys as the CDK's facade reads them off the streams it converts itself.
    cursor_field = get_cursor_field_from_stream(stream)
    field = (
        CursorField(cursor_field, supports_catalog_defined_cursor_field=stream.catalog_defined_cursor)
        if cursor is not None and cursor_field
        else None
    )
    keys = get_primary_key_from_stream(stream.primary_key)
    default = DefaultStream(planner, stream.name, stream.get_json_schema, keys, field, logger, kept)
    return StreamFacade(default, stream, kept, slice_logger=source._slice_logger, logger=logger)


def failures_last(
    messages: Iterator[AirbyteMessage],
    blocked: Sequence[AirbyteStream] = (),
    blocked_error: AirbyteTracedException | None = None,
) -> Iterator[AirbyteMessage]:
    """The read's messages, with each failed stream's error held back to the end and sent once.

    The CDK sends an error per failed partition as it happens, then raises a combined
    config error. Here every record and state that completed goes out first; then
    one error per failed stream (the first it raised, its secrets masked, its
    traceback logged once at DEBUG), the last raised so the command exits non-zero.
    The streams the key could not read (`blocked`) end INCOMPLETE, and
    `blocked_error`, which names the scopes they need, is the read's last error.
    """
    failed: dict[str, AirbyteMessage] = {}
    try:
        for message in messages:
            if message.type == Type.TRACE and message.trace is not None and message.trace.error:
                _mask_secrets(message.trace.error)
                descriptor = message.trace.error.stream_descriptor
                if descriptor is not None:
                    if descriptor.name not in failed:
                        failed[descriptor.name] = message
                        logger.debug(f"Stream '{descriptor.name}' failed: {message.trace.error.stack_trace}")
                    continue
            yield message
    except AirbyteTracedException:
        if not failed:
            raise  # not the CDK's summary of failed streams: a failure of the read itself
    for stream in blocked:
        yield stream_status_as_airbyte_message(stream, AirbyteStreamStatus.INCOMPLETE)
    if blocked_error is not None:
        yield from failed.values()
        raise blocked_error
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
