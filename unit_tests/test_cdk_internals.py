"""Every part of airbyte-cdk the connector relies on beyond the CDK's documented API, held to the shape it needs.

The connector builds its own engine from the CDK's concurrent parts, writes record pages beside the CDK's print
buffer, overrides private HTTP hooks and reads private budget fields. None of that is promised across CDK
releases, so `locks/runtime.txt` pins the CDK, and this module says, when a new CDK is tried (`bash scripts/lock.sh
--upgrade-package airbyte-cdk`), exactly which of these moved, which connector module relies on it and what for.
A test per internal: each checks that it is still there, that the connector's calls still bind to its signature
(positional arguments on the parameters they mean), and, where the connector relies on what it does, that it does
it. Everything is imported inside the checks, so a module the CDK moved fails its own entries, not the collection.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import io
import logging
import re
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from queue import Queue
from typing import Any
from unittest import mock

import pytest
import requests
import requests_mock

RUNTIME_LOCK = Path(__file__).resolve().parents[1] / "locks" / "runtime.txt"
# The airbyte-cdk every check below was verified against. Locking another (scripts/lock.sh) fails
# test_the_locked_cdk_is_the_one_these_checks_were_verified_against until each check and note is reviewed for it.
VERIFIED_AGAINST = "7.39.1"
LOGGER = logging.getLogger("airbyte")
KLAVIYO = "https://a.klaviyo.com/"


@dataclass(frozen=True)
class Internal:
    """A CDK internal: what it is, which connector modules rely on it and what for, and the check of its shape."""

    name: str
    used_by: str
    purpose: str
    check: Callable[[], None]


INTERNALS: list[Internal] = []


def internal(name: str, used_by: str, purpose: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Lists the decorated check as the check of `name`."""

    def listed(check: Callable[[], None]) -> Callable[[], None]:
        INTERNALS.append(Internal(name, used_by, purpose, check))
        return check

    return listed


def find(path: str) -> Any:
    """The object at `path` ("module:Attribute.attribute"), imported now."""
    where, _, attributes = path.partition(":")
    found: Any = importlib.import_module(where)
    for attribute in attributes.split(".") if attributes else ():
        if not hasattr(found, attribute):
            raise AttributeError(f"{where} has no attribute {attribute!r}")
        found = getattr(found, attribute)
        where = f"{where}.{attribute}"
    return found


def binds(target: Any, *positional: str, keywords: tuple[str, ...] = ()) -> None:
    """The connector's call of `target` still binds to its signature: arguments passed by position (named here
    for the parameters they mean) land on parameters of those names, in that order; each keyword names a
    parameter; and no parameter the call leaves out became required. A class is checked through its __init__."""
    function = target.__init__ if inspect.isclass(target) else target
    signature = inspect.signature(function)
    leading = ("self",) if next(iter(signature.parameters), None) == "self" else ()
    name = getattr(target, "__qualname__", repr(target))
    try:
        bound = signature.bind(*leading, *positional, **{keyword: keyword for keyword in keywords})
    except TypeError as error:
        raise AssertionError(f"{name}{signature} no longer takes the connector's call: {error}") from None
    misplaced = [argument for argument in (*positional, *keywords) if bound.arguments.get(argument) != argument]
    assert not misplaced, f"{name}{signature}: the connector's {misplaced} no longer reach parameters of those names"


def locked_cdk() -> str:
    """The airbyte-cdk version locks/runtime.txt pins (what the image installs)."""
    pinned = re.search(r"^airbyte-cdk==(\S+)", RUNTIME_LOCK.read_text(), flags=re.M)
    assert pinned, f"{RUNTIME_LOCK} pins no airbyte-cdk"
    return pinned.group(1)


def report(item: Internal, problem: BaseException) -> str:
    """What a failure says: the internal, who relies on it and what for, what changed, and the CDK versions."""
    return (
        f"{item.name} is no longer what the connector needs.\n"
        f"Relied on by {item.used_by}, {item.purpose}.\n"
        f"What changed: {type(problem).__name__}: {problem}\n"
        f"airbyte-cdk installed: {importlib.metadata.version('airbyte-cdk')}; locked (locks/runtime.txt): "
        f"{locked_cdk()}; these checks verified against: {VERIFIED_AGAINST}. Adapt the connector to the CDK, "
        "then this check and its note."
    )


@pytest.mark.parametrize("item", INTERNALS, ids=lambda item: item.name)
def test_the_cdk_still_has_each_internal_the_connector_relies_on(item: Internal) -> None:
    try:
        item.check()
        return
    except Exception as problem:
        failure = report(item, problem)
    pytest.fail(failure, pytrace=False)  # outside the except: the report shows the problem once, not its chain


def test_a_moved_internal_fails_naming_the_connector_module_what_for_and_the_cdk_versions() -> None:
    gone = Internal(
        "HttpStream._no_such_hook",
        "source_klaviyo/streams/base.py",
        "to show what a failure says",
        lambda: find("airbyte_cdk.sources.streams.http:HttpStream._no_such_hook"),
    )
    with pytest.raises(pytest.fail.Exception) as failure:
        test_the_cdk_still_has_each_internal_the_connector_relies_on(gone)
    assert str(failure.value).splitlines() == [
        "HttpStream._no_such_hook is no longer what the connector needs.",
        "Relied on by source_klaviyo/streams/base.py, to show what a failure says.",
        "What changed: AttributeError: airbyte_cdk.sources.streams.http.HttpStream has no attribute '_no_such_hook'",
        f"airbyte-cdk installed: {importlib.metadata.version('airbyte-cdk')}; locked (locks/runtime.txt): "
        f"{locked_cdk()}; these checks verified against: {VERIFIED_AGAINST}. Adapt the connector to the CDK, then "
        "this check and its note.",
    ]


def test_the_locked_cdk_is_the_one_these_checks_were_verified_against() -> None:
    assert locked_cdk() == VERIFIED_AGAINST, (
        f"locks/runtime.txt pins airbyte-cdk {locked_cdk()}, and these checks were verified against "
        f"{VERIFIED_AGAINST}: once they pass, review each against the new CDK's code (what it does, not only its "
        "names), then set VERIFIED_AGAINST."
    )


# -- what the connector builds a stream and a source from, for the checks that run the CDK's code --------------


def context() -> Any:
    from source_klaviyo.config import parse_config
    from source_klaviyo.streams import StreamContext
    from unit_tests.klaviyo_mock import NOW, config

    return StreamContext(parse_config(config(), NOW), None, NOW)


def klaviyo_source() -> Any:
    from unit_tests.klaviyo_mock import source

    return source()


# -- the entry point and stdout: protocol.py, shutdown.py, run.py -------------------------------------------------


@internal(
    "airbyte_cdk.entrypoint.PRINT_BUFFER",
    "source_klaviyo/protocol.py and shutdown.py",
    "to write a page of records, or the TRACE of a stop, on stdout right after every line printed before it: they "
    "flush the buffer and write holding its lock (reentrant, since flush takes it too), which every print waits for",
)
def print_buffer_flushes_to_stdout_under_a_reentrant_lock_every_write_takes() -> None:
    buffer = find("airbyte_cdk.entrypoint:PRINT_BUFFER")
    with buffer.lock:
        reentrant = buffer.lock.acquire(timeout=1)
        if reentrant:
            buffer.lock.release()
    assert reentrant, "PRINT_BUFFER.lock is no longer reentrant"
    with mock.patch.object(sys, "__stdout__", io.StringIO()) as stdout, buffer.lock:
        buffer.flush()  # whatever an earlier test left in it
        stdout.seek(0)
        stdout.truncate()
        buffer.write("a line\n")
        buffer.flush()
        assert stdout.getvalue() == "a line\n", "PRINT_BUFFER.flush no longer writes what it holds to sys.__stdout__"
    written = threading.Event()
    with buffer.lock:
        threading.Thread(target=lambda: (buffer.write(""), written.set()), daemon=True).start()
        assert not written.wait(0.2), "PRINT_BUFFER.write no longer waits for the lock"
    assert written.wait(5)
    assert hasattr(buffer, "__enter__") and hasattr(buffer, "__exit__"), "PRINT_BUFFER is no context manager"


@internal(
    "airbyte_cdk.entrypoint.launch",
    "source_klaviyo/protocol.py (launch)",
    "to run the CLI as the CDK's launch() does, with KlaviyoEntrypoint in place of AirbyteEntrypoint: protocol.launch "
    "is a copy, so a launch() that does anything more needs the same in the copy",
)
def launch_parses_the_arguments_and_prints_what_run_yields_inside_the_print_buffer() -> None:
    launch = find("airbyte_cdk.entrypoint:launch")
    used = set(launch.__code__.co_names)
    assert used == {"AirbyteEntrypoint", "PRINT_BUFFER", "parse_args", "print", "run"}, f"launch() now uses {used}"
    entrypoint = find("airbyte_cdk.entrypoint:AirbyteEntrypoint")
    binds(entrypoint, "source")
    binds(entrypoint.parse_args, "args")
    binds(entrypoint.run, "parsed_args")


@internal(
    "AirbyteEntrypoint.read",
    "source_klaviyo/protocol.py (KlaviyoEntrypoint)",
    "to write each record page in its place among the messages: it overrides read(), which run() must call",
)
def entrypoint_run_reads_through_its_own_read_method() -> None:
    entrypoint = find("airbyte_cdk.entrypoint:AirbyteEntrypoint")
    binds(entrypoint.read, "source_spec", "config", "catalog", "state")
    assert "self.read(" in inspect.getsource(entrypoint.run), "AirbyteEntrypoint.run no longer calls self.read"


@internal(
    "AirbyteEntrypoint.handle_record_counts",
    "source_klaviyo/protocol.py (KlaviyoEntrypoint)",
    "to count a page's records into the STATE that follows, as the CDK counts single records: it overrides this "
    "static method, which read() calls for every message, with counts keyed by HashableStreamDescriptor",
)
def record_counts_are_kept_per_stream_descriptor_by_a_static_method_read_calls() -> None:
    from airbyte_cdk.models import (
        AirbyteMessage,
        AirbyteStateBlob,
        AirbyteStateMessage,
        AirbyteStateType,
        AirbyteStreamState,
        StreamDescriptor,
        Type,
    )

    entrypoint = find("airbyte_cdk.entrypoint:AirbyteEntrypoint")
    assert isinstance(inspect.getattr_static(entrypoint, "handle_record_counts"), staticmethod), "no staticmethod"
    binds(entrypoint.handle_record_counts, "message", "stream_message_count")
    assert "self.handle_record_counts(" in inspect.getsource(entrypoint.read), "read() no longer calls it"
    descriptor = find("airbyte_cdk.sources.connector_state_manager:HashableStreamDescriptor")
    counts: defaultdict[Any, float] = defaultdict(float)
    counts[descriptor(name="lists", namespace=None)] += 3
    state = AirbyteMessage(
        type=Type.STATE,
        state=AirbyteStateMessage(
            type=AirbyteStateType.STREAM,
            stream=AirbyteStreamState(
                stream_descriptor=StreamDescriptor(name="lists"), stream_state=AirbyteStateBlob(updated="x")
            ),
        ),
    )
    assert entrypoint.handle_record_counts(state, counts) is state, "it no longer returns the message it counted"
    assert state.state.sourceStats.recordCount == 3, "a STATE no longer carries the count kept for its stream"


@internal(
    "AirbyteEntrypoint.airbyte_message_to_string",
    "source_klaviyo/run.py and shutdown.py",
    "to print the command's closing TRACE (a config error, a stop) as the CDK serialises messages",
)
def messages_serialise_through_a_static_method() -> None:
    entrypoint = find("airbyte_cdk.entrypoint:AirbyteEntrypoint")
    assert isinstance(inspect.getattr_static(entrypoint, "airbyte_message_to_string"), staticmethod), "no staticmethod"
    binds(entrypoint.airbyte_message_to_string, "airbyte_message")


@internal(
    "Source.read_config, read_catalog, read_state",
    "source_klaviyo/source.py (SourceKlaviyo)",
    "to read the input files with clear errors (inputs.py): it overrides them as the same static and class methods",
)
def the_input_file_hooks_are_the_kinds_of_method_the_connector_overrides() -> None:
    from source_klaviyo.source import SourceKlaviyo

    cdk_source = find("airbyte_cdk.sources:Source")
    for hook in ("read_config", "read_catalog", "read_state"):
        kind = type(inspect.getattr_static(cdk_source, hook))
        ours = type(inspect.getattr_static(SourceKlaviyo, hook))
        assert kind is ours, f"Source.{hook} is a {kind.__name__} now, SourceKlaviyo's a {ours.__name__}"
    binds(cdk_source.read_config, "config_path")
    binds(cdk_source.read_catalog, "catalog_path")
    binds(cdk_source.read_state, "state_path")


# -- the engine: source.py, engine.py ------------------------------------------------------------------------------


@internal(
    "ConcurrentSourceAdapter._concurrent_source",
    "source_klaviyo/source.py",
    "to give each read an engine sized to it (its num_workers, a planner thread per selected stream): read() "
    "replaces this attribute, which the adapter's read() runs",
)
def the_adapter_reads_through_the_engine_it_keeps() -> None:
    adapter = find("airbyte_cdk.sources.concurrent_source.concurrent_source_adapter:ConcurrentSourceAdapter")
    engine = find("airbyte_cdk.sources.concurrent_source.concurrent_source:ConcurrentSource")
    binds(adapter, "concurrent_source")
    kept = getattr(klaviyo_source(), "_concurrent_source", None)
    assert isinstance(kept, engine), f"the adapter keeps {kept!r}, not its ConcurrentSource, in _concurrent_source"
    assert "self._concurrent_source.read(" in inspect.getsource(adapter.read), "its read() no longer runs it"


@internal(
    "AbstractSource._slice_logger",
    "source_klaviyo/source.py and engine.py",
    "to give the engine and each StreamFacade the source's slice logger, as the CDK's own adapter does",
)
def sources_keep_a_slice_logger() -> None:
    slice_logger = find("airbyte_cdk.sources.utils.slice_logger:SliceLogger")
    kept = getattr(find("airbyte_cdk.sources:AbstractSource"), "_slice_logger", None)
    assert isinstance(kept, slice_logger), f"AbstractSource._slice_logger is {kept!r}"


@internal(
    "ConcurrentSource(threadpool, logger, slice_logger, queue, message_repository, ...)",
    "source_klaviyo/engine.py (concurrent_source) and shutdown.py (StoppingQueue)",
    "to run the engine on the connector's own thread pool (a thread per planner beside the workers) and queue: "
    "the engine must read that queue, with get(), which StoppingQueue overrides to end a read on SIGTERM",
)
def the_engine_takes_its_thread_pool_and_queue_and_reads_the_queue_with_get() -> None:
    engine = find("airbyte_cdk.sources.concurrent_source.concurrent_source:ConcurrentSource")
    binds(
        engine,
        "threadpool",
        "logger",
        "slice_logger",
        "queue",
        "message_repository",
        keywords=("initial_number_partitions_to_generate",),
    )
    source = klaviyo_source()
    assert source._concurrent_source._queue is source.queue, "the engine no longer reads the queue it is given"
    assert "queue.get()" in inspect.getsource(engine), "the engine no longer reads its queue with get()"


@internal(
    "ThreadPoolManager(threadpool, logger, max_concurrent_tasks=...)",
    "source_klaviyo/engine.py (concurrent_source)",
    "to prune finished partitions every 500 rather than 10,000 (a page per partition kept each page's future)",
)
def the_thread_pool_manager_takes_a_pool_and_a_task_limit() -> None:
    manager = find("airbyte_cdk.sources.concurrent_source.thread_pool_manager:ThreadPoolManager")
    binds(manager, "threadpool", "logger", keywords=("max_concurrent_tasks",))


@internal(
    "ConcurrentMessageRepository(queue, message_repository)",
    "source_klaviyo/source.py and planning.py",
    "to send STATE and record pages through the records' own queue, after the records they follow: a worker's "
    "message must reach the queue itself, unchanged (the entrypoint tells a RecordPage by its class)",
)
def a_worker_message_reaches_the_engine_queue_as_it_is() -> None:
    from airbyte_cdk.sources.message import InMemoryMessageRepository

    from source_klaviyo.protocol import RecordPage

    repository_class = find("airbyte_cdk.sources.message.concurrent_repository:ConcurrentMessageRepository")
    binds(repository_class, "queue", "message_repository")
    queue: Queue[Any] = Queue()
    repository = repository_class(queue, InMemoryMessageRepository())
    page = RecordPage("lists", [{"id": "1"}, {"id": "2"}], 0)
    worker = threading.Thread(target=repository.emit_message, args=(page,))
    worker.start()
    worker.join(5)
    assert queue.get_nowait() is page, "a message a worker emits no longer reaches the queue as it was emitted"


@internal(
    "StreamFacade(stream, legacy_stream, cursor, slice_logger=..., logger=...)",
    "source_klaviyo/engine.py (concurrent_stream)",
    "to wrap the DefaultStream of a planned stream (windows, parents), which the adapter's own conversion cannot build",
)
def a_stream_facade_wraps_a_default_stream_and_the_legacy_stream() -> None:
    facade = find("airbyte_cdk.sources.streams.concurrent.adapters:StreamFacade")
    binds(facade, "stream", "legacy_stream", "cursor", keywords=("slice_logger", "logger"))


@internal(
    "DefaultStream(partition_generator, name, json_schema, primary_key, cursor_field, logger, cursor)",
    "source_klaviyo/engine.py (concurrent_stream)",
    "to run a stream on the connector's partition planner, passing these by position, the schema as a callable",
)
def a_default_stream_runs_a_planner_and_takes_its_schema_as_a_callable() -> None:
    from airbyte_cdk.sources.message import InMemoryMessageRepository

    default_stream = find("airbyte_cdk.sources.streams.concurrent.default_stream:DefaultStream")
    cursor = find("airbyte_cdk.sources.streams.concurrent.cursor:FinalStateCursor")
    generator = find("airbyte_cdk.sources.streams.concurrent.partitions.partition_generator:PartitionGenerator")
    binds(
        default_stream, "partition_generator", "name", "json_schema", "primary_key", "cursor_field", "logger", "cursor"
    )

    class NoPartitions(generator):
        def generate(self) -> Iterator[Any]:
            return iter(())

    schema = {"type": "object", "properties": {"id": {"type": "string"}}}
    stream = default_stream(
        NoPartitions(),
        "lists",
        lambda: schema,
        ["id"],
        None,
        LOGGER,
        cursor("lists", None, InMemoryMessageRepository()),
    )
    assert stream.get_json_schema() == schema, "DefaultStream no longer calls a json_schema it is given as a callable"


@internal(
    "CursorField(cursor_field_key, supports_catalog_defined_cursor_field=...)",
    "source_klaviyo/engine.py and state.py",
    "to name a stream's cursor, and let the catalog choose the profiles stream's",
)
def a_cursor_field_takes_its_key_and_whether_the_catalog_may_choose_it() -> None:
    binds(
        find("airbyte_cdk.sources.streams.concurrent.cursor:CursorField"),
        "cursor_field_key",
        keywords=("supports_catalog_defined_cursor_field",),
    )


@internal(
    "FinalStateCursor(stream_name, stream_namespace, message_repository)",
    "source_klaviyo/engine.py (concurrent_stream)",
    "to give a planned full-refresh stream the CDK's end-of-stream state",
)
def a_final_state_cursor_takes_the_stream_and_its_repository() -> None:
    binds(
        find("airbyte_cdk.sources.streams.concurrent.cursor:FinalStateCursor"),
        "stream_name",
        "stream_namespace",
        "message_repository",
    )


@internal(
    "ConcurrentSourceAdapter.convert_to_concurrent_stream(logger, stream, state_manager, cursor)",
    "source_klaviyo/engine.py and streams/base.py",
    "to run a stream without a planner over its slices: the stream's own stream_slices reads the cursor this attaches",
)
def converting_a_stream_attaches_the_cursor_it_is_given() -> None:
    from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
    from airbyte_cdk.sources.message import InMemoryMessageRepository

    from source_klaviyo.streams.resources import Templates

    adapter = find("airbyte_cdk.sources.concurrent_source.concurrent_source_adapter:ConcurrentSourceAdapter")
    binds(adapter.convert_to_concurrent_stream, "logger", "stream", "state_manager", "cursor")
    stream = Templates(context())
    state_manager = ConnectorStateManager()
    cursor = stream.concurrent_cursor(state_manager, InMemoryMessageRepository())
    klaviyo_source().convert_to_concurrent_stream(LOGGER, stream, state_manager, cursor)
    assert stream.cursor is cursor, "the converted stream no longer carries the cursor"


@internal(
    "concurrent.helpers.get_cursor_field_from_stream, get_primary_key_from_stream",
    "source_klaviyo/engine.py (concurrent_stream)",
    "to read a planned stream's cursor field and keys as the CDK's facade reads them",
)
def the_facade_helpers_read_a_streams_cursor_field_and_keys() -> None:
    helpers = "airbyte_cdk.sources.streams.concurrent.helpers"
    binds(find(f"{helpers}:get_cursor_field_from_stream"), "stream")
    binds(find(f"{helpers}:get_primary_key_from_stream"), "stream_primary_key")


@internal(
    "stream_status_utils.as_airbyte_message(stream, current_status)",
    "source_klaviyo/engine.py (failures_last)",
    "to end the streams the key could not read INCOMPLETE",
)
def a_stream_status_message_is_built_from_the_stream_and_its_status() -> None:
    binds(find("airbyte_cdk.utils.stream_status_utils:as_airbyte_message"), "stream", "current_status")


# -- partitions and cursors: planning.py, windows.py, parents.py, state.py -------------------------------------


@internal(
    "PartitionReader.process_partition",
    "source_klaviyo/planning.py (PlannedPartition) and state.py",
    "to send a page's rest as a RecordPage once its newest record is queued and observed, and to put STATE after "
    "a partition's records: per record, the reader queues it, has the cursor observe it, and only then asks the "
    "partition for the next; after the last, it closes the partition in the cursor, then queues its sentinel",
)
def the_partition_reader_queues_and_observes_each_record_before_the_next_then_closes() -> None:
    reader = find("airbyte_cdk.sources.streams.concurrent.partition_reader:PartitionReader")
    sentinel = find("airbyte_cdk.sources.streams.concurrent.partitions.types:PartitionCompleteSentinel")
    binds(reader, "queue")
    binds(reader.process_partition, "partition", "cursor")
    events: list[tuple[str, Any]] = []
    first, second = object(), object()

    class RecordingQueue(Queue[Any]):
        def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
            events.append(
                ("queued", "the sentinel" if isinstance(item, sentinel) and item.partition is partition else item)
            )

    class RecordingCursor:
        def observe(self, record: Any) -> None:
            events.append(("observed", record))

        def close_partition(self, closed: Any) -> None:
            events.append(("closed", closed))

    class TwoRecords:
        def read(self) -> Iterator[Any]:
            yield first
            events.append(("resumed", None))
            yield second

        def stream_name(self) -> str:
            return "lists"

    partition = TwoRecords()
    reader(RecordingQueue()).process_partition(partition, RecordingCursor())
    assert events == [
        ("queued", first),
        ("observed", first),
        ("resumed", None),
        ("queued", second),
        ("observed", second),
        ("closed", partition),
        ("queued", "the sentinel"),
    ]


@internal(
    "Partition (its abstract methods)",
    "source_klaviyo/planning.py, windows.py, parents.py",
    "to be the CDK's partitions: WindowPartition and ParentPartition implement every abstract method of Partition",
)
def the_connectors_partitions_implement_every_abstract_method() -> None:
    from source_klaviyo.parents import ParentPartition
    from source_klaviyo.windows import WindowPartition

    find("airbyte_cdk.sources.streams.concurrent.partitions.partition:Partition")
    missing = {cls.__name__: sorted(cls.__abstractmethods__) for cls in (WindowPartition, ParentPartition)}
    assert not any(missing.values()), f"methods Partition now requires: {missing}"


@internal(
    "PartitionGenerator (its abstract methods)",
    "source_klaviyo/planning.py, windows.py, parents.py",
    "to be the CDK's partition generators: WindowPlanner and ParentPlanner implement every abstract method",
)
def the_connectors_planners_implement_every_abstract_method() -> None:
    from source_klaviyo.parents import ParentPlanner
    from source_klaviyo.windows import WindowPlanner

    find("airbyte_cdk.sources.streams.concurrent.partitions.partition_generator:PartitionGenerator")
    missing = {cls.__name__: sorted(cls.__abstractmethods__) for cls in (WindowPlanner, ParentPlanner)}
    assert not any(missing.values()), f"methods PartitionGenerator now requires: {missing}"


@internal(
    "Cursor (its abstract methods)",
    "source_klaviyo/state.py (ParentCursor, ReportCursor)",
    "to keep the per-parent and the report streams' state as the CDK's concurrent cursors",
)
def the_connectors_cursors_implement_every_abstract_method() -> None:
    from source_klaviyo.state import ParentCursor, ReportCursor

    find("airbyte_cdk.sources.streams.concurrent.cursor:Cursor")
    missing = {cls.__name__: sorted(cls.__abstractmethods__) for cls in (ParentCursor, ReportCursor)}
    assert not any(missing.values()), f"methods Cursor now requires: {missing}"


@internal(
    "ConcurrentCursor(stream_name=..., ..., lookback_window=...)",
    "source_klaviyo/state.py (build_cursor)",
    "to keep every finished window of a windowed or dated stream in its date-range state",
)
def a_concurrent_cursor_takes_the_keywords_build_cursor_passes() -> None:
    binds(
        find("airbyte_cdk.sources.streams.concurrent.cursor:ConcurrentCursor"),
        keywords=(
            "stream_name",
            "stream_namespace",
            "stream_state",
            "message_repository",
            "connector_state_manager",
            "connector_state_converter",
            "cursor_field",
            "slice_boundary_fields",
            "start",
            "end_provider",
            "lookback_window",
        ),
    )


@internal(
    "ConcurrentCursor._most_recent_cursor_value_per_partition",
    "source_klaviyo/state.py (WindowCursor)",
    "to forget a window's newest record once the window is in the state (memory grew with every page): the "
    "cursor keeps it here keyed by the record's slice, which is the partition's to_slice()",
)
def the_cursor_keeps_each_windows_newest_value_keyed_by_its_slice() -> None:
    from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
    from airbyte_cdk.sources.message import InMemoryMessageRepository
    from airbyte_cdk.sources.types import Record

    from source_klaviyo.planning import IdentitySlice
    from source_klaviyo.state import build_cursor
    from unit_tests.klaviyo_mock import NOW

    cursor = build_cursor("events", "datetime", None, None, ConnectorStateManager(), InMemoryMessageRepository(), NOW)
    window = IdentitySlice({"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"})
    cursor.observe(Record(data={"datetime": "2026-11-01T05:00:00Z"}, stream_name="events", associated_slice=window))
    newest = getattr(cursor, "_most_recent_cursor_value_per_partition", None)
    assert newest is not None and window in newest, "the cursor no longer keeps the newest value by the slice here"

    class Window:
        def to_slice(self) -> Any:
            return window

        def stream_name(self) -> str:
            return "events"

    cursor.close_partition(Window())
    assert window not in newest, "closing the window no longer forgets its newest value"


@internal(
    "IsoMillisConcurrentStreamStateConverter hooks",
    "source_klaviyo/state.py (KlaviyoDatetimeConverter)",
    "to write date-range state in Klaviyo's format, parse datetimes fast and mark an unfinished sync: it overrides "
    "parse_timestamp, output_format and convert_to_state_message, and merges intervals with END_KEY",
)
def the_datetime_converter_has_the_hooks_the_connector_overrides() -> None:
    converter = find(
        "airbyte_cdk.sources.streams.concurrent.state_converters.datetime_stream_state_converter:"
        "IsoMillisConcurrentStreamStateConverter"
    )
    binds(converter, keywords=("is_sequential_state",))
    binds(converter.parse_timestamp, "timestamp")
    binds(converter.output_format, "timestamp")
    binds(converter.convert_to_state_message, "cursor_field", "stream_state")
    binds(converter.merge_intervals, "intervals")
    assert converter.END_KEY == "end", f"END_KEY is {converter.END_KEY!r}"


@internal(
    "Record(data=..., stream_name=..., associated_slice=...)",
    "source_klaviyo/planning.py (PlannedPartition)",
    "to hand the CDK a page's newest record with the slice the cursor keys it by",
)
def a_record_takes_its_data_stream_and_slice() -> None:
    binds(find("airbyte_cdk.sources.types:Record"), keywords=("data", "stream_name", "associated_slice"))


@internal(
    "ConnectorStateManager.get_stream_state, update_state_for_stream, create_state_message",
    "source_klaviyo/state.py (ParentCursor, ReportCursor, build_cursor)",
    "to read a stream's incoming state and emit its STATE messages",
)
def the_state_manager_reads_and_writes_a_streams_state_by_name_and_namespace() -> None:
    manager = find("airbyte_cdk.sources.connector_state_manager:ConnectorStateManager")
    binds(manager, keywords=("state",))
    binds(manager.get_stream_state, "stream_name", "namespace")
    binds(manager.update_state_for_stream, "stream_name", "namespace", "value")
    binds(manager.create_state_message, "stream_name", "namespace")


@internal(
    "airbyte_cdk.sources.streams.NO_CURSOR_STATE_KEY",
    "source_klaviyo/state.py (ParentCursor)",
    "to leave the CDK's no-cursor state after a finished full refresh of a per-parent stream",
)
def the_no_cursor_state_key_is_the_protocols() -> None:
    assert find("airbyte_cdk.sources.streams:NO_CURSOR_STATE_KEY") == "__ab_no_cursor_state_message"


@internal(
    "the engine's queue items (PartitionCompleteSentinel, PartitionGenerationCompletedSentinel, "
    "StreamThreadException, Partition)",
    "source_klaviyo/shutdown.py (StoppingQueue)",
    "to drop, once stopped, the items that would start or finish partitions and streams",
)
def the_engines_queue_items_are_where_shutdown_imports_them() -> None:
    for path in (
        "airbyte_cdk.sources.streams.concurrent.partitions.types:PartitionCompleteSentinel",
        "airbyte_cdk.sources.concurrent_source.partition_generation_completed_sentinel:"
        "PartitionGenerationCompletedSentinel",
        "airbyte_cdk.sources.concurrent_source.stream_thread_exception:StreamThreadException",
        "airbyte_cdk.sources.streams.concurrent.partitions.partition:Partition",
    ):
        assert inspect.isclass(find(path)), f"{path} is no class"


@internal(
    "message_utils.get_stream_descriptor(message)",
    "source_klaviyo/shutdown.py (StoppingQueue)",
    "to keep each stream's last STATE, to print it again when a stop ends the read",
)
def a_state_message_names_its_stream_through_message_utils() -> None:
    binds(find("airbyte_cdk.utils.message_utils:get_stream_descriptor"), "message")


@internal(
    "airbyte_secrets_utils.update_secrets, filter_secrets",
    "source_klaviyo/config.py, engine.py, run.py, shutdown.py, source.py",
    "to register the API key as a secret and mask it in the errors the connector prints itself",
)
def secrets_are_registered_and_masked_by_the_secrets_utils() -> None:
    utils = "airbyte_cdk.utils.airbyte_secrets_utils"
    binds(find(f"{utils}:update_secrets"), "secrets")
    binds(find(f"{utils}:filter_secrets"), "string")


# -- HTTP: streams/base.py, windowed.py, children.py, reports.py, metric_aggregates.py, errors.py -----------------


@internal(
    "HttpStream.__init__(authenticator=..., api_budget=...)",
    "source_klaviyo/streams/base.py (KlaviyoStream)",
    "to give every stream the key's authenticator and the account's one API budget",
)
def an_http_stream_takes_an_authenticator_and_a_budget() -> None:
    binds(find("airbyte_cdk.sources.streams.http:HttpStream"), keywords=("authenticator", "api_budget"))


@internal(
    "HttpStream's resumable full-refresh cursor",
    "source_klaviyo/streams/base.py (KlaviyoStream.read_records)",
    "to read every page of a full refresh: HttpStream attaches a cursor that, under the concurrent facade, reads "
    "one page only, to streams without a cursor field unless they override read_records, as KlaviyoStream does",
)
def a_stream_overriding_read_records_gets_no_resumable_full_refresh_cursor() -> None:
    from source_klaviyo.streams.resources import Metrics

    find("airbyte_cdk.sources.streams.http:HttpStream")
    cursor = Metrics(context()).cursor
    assert cursor is None, f"HttpStream attached {cursor!r} to a full-refresh stream that overrides read_records"


@internal(
    "HttpStream._read_pages(records_generator_fn, stream_slice, stream_state)",
    "source_klaviyo/streams/base.py (KlaviyoStream.read_records)",
    "to read every page of a slice: it calls self._fetch_next_page (which KlaviyoStream overrides to explain "
    "exhausted retries) for each page, passes each response to the function given, and follows next_page_token",
)
def read_pages_fetches_each_page_through_the_stream_until_there_is_no_next() -> None:
    from source_klaviyo.streams.resources import Metrics

    read_pages = find("airbyte_cdk.sources.streams.http:HttpStream._read_pages")
    binds(read_pages, "records_generator_fn", "stream_slice", "stream_state")
    stream = Metrics(context())
    calls: list[tuple[Any, ...]] = []
    link = {"next": f"{KLAVIYO}api/metrics?page%5Bcursor%5D=2"}
    pages = iter([("request 1", "page 1"), ("request 2", "page 2")])

    def fetch(stream_slice: Any, stream_state: Any, next_page_token: Any) -> tuple[str, str]:
        calls.append(("fetch", stream_slice, stream_state, next_page_token))
        return next(pages)

    def records(request: Any, response: Any, stream_state: Any, stream_slice: Any) -> list[Any]:
        calls.append(("records", request, response, stream_state, stream_slice))
        return [response]

    stream._fetch_next_page = fetch
    stream.next_page_token = lambda response: link if response == "page 1" else None
    stream_slice, stream_state = {"archived": False}, {"updated": "x"}
    assert list(read_pages(stream, records, stream_slice, stream_state)) == ["page 1", "page 2"]
    assert calls == [
        ("fetch", stream_slice, stream_state, None),
        ("records", "request 1", "page 1", stream_state, stream_slice),
        ("fetch", stream_slice, stream_state, link),
        ("records", "request 2", "page 2", stream_state, stream_slice),
    ]


@internal(
    "HttpStream._fetch_next_page(stream_slice, stream_state, next_page_token)",
    "source_klaviyo/streams/base.py, windowed.py (read_window), children.py (read_parent)",
    "to send one page's request through the CDK's client (retries, budget, error handler) and get back the "
    "(request, response) pair, the arguments passed by position",
)
def fetching_a_page_takes_the_slice_the_state_and_the_token() -> None:
    binds(
        find("airbyte_cdk.sources.streams.http:HttpStream._fetch_next_page"),
        "stream_slice",
        "stream_state",
        "next_page_token",
    )


@internal(
    "HttpStream._http_client.send_request(http_method, url, request_kwargs=..., headers=..., json=..., data=...)",
    "source_klaviyo/streams/reports.py and metric_aggregates.py",
    "to POST a report or an aggregate query through the stream's own client (its retries, budget and handler)",
)
def a_stream_sends_its_own_requests_through_its_http_client() -> None:
    from source_klaviyo.streams.resources import Metrics

    client = find("airbyte_cdk.sources.streams.http:HttpClient")
    kept = getattr(Metrics(context()), "_http_client", None)
    assert isinstance(kept, client), f"an HttpStream keeps {kept!r}, not its HttpClient, in _http_client"
    binds(client.send_request, "http_method", "url", keywords=("request_kwargs", "headers", "params", "json", "data"))


@internal(
    "HttpClient(name=..., logger=..., error_handler=..., api_budget=..., authenticator=..., backoff_strategy=...)",
    "source_klaviyo/streams/base.py (KlaviyoStream.probe)",
    "to probe a stream's access with its own error handler, under the shared budget",
)
def an_http_client_takes_the_probes_handler_budget_key_and_backoff() -> None:
    binds(
        find("airbyte_cdk.sources.streams.http:HttpClient"),
        keywords=("name", "logger", "error_handler", "api_budget", "authenticator", "backoff_strategy"),
    )


@internal(
    "HttpStream._join_url(url_base, path)",
    "source_klaviyo/streams/base.py, reports.py, metric_aggregates.py",
    "to build a request's URL, where the path of a next page is Klaviyo's full links.next URL, kept as it is",
)
def joining_a_url_appends_a_path_and_keeps_a_full_url() -> None:
    join = find("airbyte_cdk.sources.streams.http:HttpStream._join_url")
    binds(join, "url_base", "path")
    assert join(KLAVIYO, "api/lists") == f"{KLAVIYO}api/lists"
    link = f"{KLAVIYO}api/lists?page%5Bcursor%5D=bmV4dA"
    assert join(KLAVIYO, link) == link, "a full next-page URL is no longer kept as it is"


@internal(
    'HttpClient\'s "API rate limit exceeded." once 429 retries run out',
    "source_klaviyo/streams/base.py (retries_explained)",
    "to say which stream Klaviyo kept throttling and what to do: it tells that error by this message and by the "
    "BaseBackoffException it was raised while handling",
)
def exhausted_rate_limit_retries_raise_this_message_while_handling_the_backoff_exception() -> None:
    from airbyte_cdk.sources.streams.http.error_handlers import HttpStatusErrorHandler
    from airbyte_cdk.sources.streams.http.exceptions import BaseBackoffException
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    client = find("airbyte_cdk.sources.streams.http:HttpClient")(
        name="lists", logger=LOGGER, error_handler=HttpStatusErrorHandler(LOGGER, max_retries=0)
    )
    with requests_mock.Mocker() as klaviyo:
        klaviyo.get(f"{KLAVIYO}api/lists", status_code=429)
        with pytest.raises(AirbyteTracedException) as raised:
            client.send_request("GET", f"{KLAVIYO}api/lists", request_kwargs={})
    assert raised.value.message == "API rate limit exceeded.", f"the message is now {raised.value.message!r}"
    cause = raised.value.__context__
    assert isinstance(cause, BaseBackoffException), f"it is raised while handling {cause!r}"


@internal(
    "HttpStatusErrorHandler(logger, error_mapping=..., max_retries=..., max_time=...) and "
    "ErrorResolution(response_action, failure_type, error_message)",
    "source_klaviyo/errors.py and the streams' error_overrides",
    "to map Klaviyo's status codes to retries and clear errors, bounded by the config's retry budget",
)
def an_error_handler_takes_a_mapping_and_retry_bounds() -> None:
    handlers = "airbyte_cdk.sources.streams.http.error_handlers"
    binds(find(f"{handlers}:HttpStatusErrorHandler"), "logger", keywords=("error_mapping", "max_retries", "max_time"))
    binds(find(f"{handlers}:ErrorResolution"), "response_action", "failure_type", "error_message")
    binds(find(f"{handlers}:BackoffStrategy.backoff_time"), "response_or_exception", "attempt_count")


@internal(
    "HttpClient._send_with_retry(request, request_kwargs, log_formatter, exit_on_rate_limit)",
    "source_klaviyo/errors.py (KlaviyoHttpClient)",
    "to retry the way the connector documents, one log line per retry: KlaviyoHttpClient overrides it, and "
    "send_request must still call it for every request",
)
def send_request_retries_through_send_with_retry() -> None:
    client = find("airbyte_cdk.sources.streams.http.http_client:HttpClient")
    binds(client._send_with_retry, "request", "request_kwargs", keywords=("log_formatter", "exit_on_rate_limit"))
    assert "self._send_with_retry(" in inspect.getsource(client.send_request), "send_request no longer calls it"


@internal(
    "HttpClient._send, _max_retries, _max_time, _name, _logger",
    "source_klaviyo/errors.py (KlaviyoHttpClient)",
    "to send one try (the budget, the error handler: a retryable answer raises a BaseBackoffException), within "
    "the error handler's tries and time (the properties the CDK's own loop reads), naming the stream it logs for",
)
def send_makes_one_try_and_the_client_knows_its_retry_budget() -> None:
    client = find("airbyte_cdk.sources.streams.http.http_client:HttpClient")
    binds(client._send, "request", "request_kwargs", keywords=("log_formatter", "exit_on_rate_limit"))
    assert isinstance(client._max_retries, property) and isinstance(client._max_time, property)
    source = inspect.getsource(client.__init__)
    assert "self._name = name" in source and "self._logger = logger" in source, "the client's name or logger moved"


@internal(
    "HttpClient._handle_error_resolution(response, exc, request, error_resolution, exit_on_rate_limit), _evict_key",
    "source_klaviyo/errors.py (KlaviyoHttpClient)",
    "to keep an IGNORE answer unlogged (its caller reports it): the override returns early for IGNORE after "
    "doing what the CDK does for an answer it will not retry, evicting the request's cache key",
)
def handle_error_resolution_and_evict_key_keep_their_shape() -> None:
    client = find("airbyte_cdk.sources.streams.http.http_client:HttpClient")
    binds(client._handle_error_resolution, "response", "exc", "request", "error_resolution", "exit_on_rate_limit")
    binds(client._evict_key, "prepared_request")


# -- the API budget: rate_limits.py, shutdown.py ------------------------------------------------------------------


@internal(
    "HttpAPIBudget._ratelimit_remaining_header, _status_codes_for_ratelimit_hit",
    "source_klaviyo/rate_limits.py (KlaviyoAPIBudget.get_calls_left_from_response)",
    "to read RateLimit-Remaining as Klaviyo writes it, and leave the budget alone on a 429",
)
def the_budget_keeps_its_header_name_and_rate_limit_status_codes() -> None:
    from source_klaviyo.rate_limits import KlaviyoAPIBudget

    find("airbyte_cdk.sources.streams.call_rate:HttpAPIBudget")
    budget = KlaviyoAPIBudget(policies=[])
    assert getattr(budget, "_ratelimit_remaining_header", None) == "ratelimit-remaining", "no header name"
    assert getattr(budget, "_status_codes_for_ratelimit_hit", None) == [429], "no rate-limit status codes"


@internal(
    "HttpAPIBudget.update_from_response and its hooks",
    "source_klaviyo/rate_limits.py (KlaviyoAPIBudget)",
    "to update a window from Klaviyo's headers through the hooks it overrides: get_matching_policy (cached), "
    "get_calls_left_from_response and get_reset_ts_from_response",
)
def updating_the_budget_from_a_response_asks_the_hooks_the_connector_overrides() -> None:
    call_rate = importlib.import_module("airbyte_cdk.sources.streams.call_rate")
    asked: list[str] = []
    policy = call_rate.MovingWindowCallRatePolicy(
        rates=[call_rate.Rate(limit=10, interval=timedelta(minutes=1))], matchers=[]
    )

    class Recording(call_rate.HttpAPIBudget):
        def get_matching_policy(self, request: Any) -> Any:
            asked.append("get_matching_policy")
            return policy

        def get_calls_left_from_response(self, response: Any) -> None:
            asked.append("get_calls_left_from_response")

        def get_reset_ts_from_response(self, response: Any) -> None:
            asked.append("get_reset_ts_from_response")

    binds(call_rate.HttpAPIBudget.update_from_response, "request", "response")
    response = requests.Response()
    response.status_code = 200
    Recording(policies=[policy]).update_from_response(
        requests.Request("GET", f"{KLAVIYO}api/lists").prepare(), response
    )
    hooks = {"get_matching_policy", "get_calls_left_from_response", "get_reset_ts_from_response"}
    assert set(asked) == hooks, f"it asked {asked}"


@internal(
    "APIBudget.acquire_call(request, block=False) and CallRateLimitHit.time_to_wait",
    "source_klaviyo/rate_limits.py (KlaviyoAPIBudget.acquire_call)",
    "to let one caller per policy poll its window: a call the window cannot take raises CallRateLimitHit saying "
    "how long to wait, instead of sleeping",
)
def a_full_window_refuses_a_call_without_blocking_and_says_how_long_to_wait() -> None:
    call_rate = importlib.import_module("airbyte_cdk.sources.streams.call_rate")
    binds(call_rate.APIBudget.acquire_call, "request", "block", "timeout")
    binds(call_rate.HttpRequestRegexMatcher, keywords=("url_base", "url_path_pattern", "params"))
    binds(call_rate.MovingWindowCallRatePolicy, keywords=("rates", "matchers"))
    binds(call_rate.Rate, keywords=("limit", "interval"))
    matcher = call_rate.HttpRequestRegexMatcher(url_base=KLAVIYO.rstrip("/"), url_path_pattern=r"^/api/lists/?$")
    policy = call_rate.MovingWindowCallRatePolicy(
        rates=[call_rate.Rate(limit=1, interval=timedelta(minutes=1))], matchers=[matcher]
    )
    budget = call_rate.HttpAPIBudget(policies=[policy])
    request = requests.Request("GET", f"{KLAVIYO}api/lists").prepare()
    assert budget.get_matching_policy(request) is policy, "the URL matcher no longer matches the endpoint"
    budget.acquire_call(request, block=False)
    with pytest.raises(call_rate.CallRateLimitHit) as hit:
        budget.acquire_call(request, block=False)
    wait = hit.value.time_to_wait
    assert isinstance(wait, timedelta) and wait > timedelta(0), f"time_to_wait is {wait!r}"


@internal(
    "HttpClient's session: every request through api_budget.acquire_call, then update_from_response",
    "source_klaviyo/rate_limits.py and shutdown.py (stop_point)",
    "to hold every request to Klaviyo's limits, and to send none once SIGTERM came: the budget is asked before "
    "each request is sent",
)
def every_request_of_an_http_client_passes_its_budget_first() -> None:
    call_rate = importlib.import_module("airbyte_cdk.sources.streams.call_rate")
    seen: list[str] = []

    class Recording(call_rate.APIBudget):
        def acquire_call(self, request: Any, block: bool = True, timeout: float | None = None) -> None:
            seen.append(f"acquire {request.url}")

        def update_from_response(self, request: Any, response: Any) -> None:
            seen.append(f"update {response.status_code}")

    client = find("airbyte_cdk.sources.streams.http:HttpClient")(
        name="lists", logger=LOGGER, api_budget=Recording(policies=[])
    )
    with requests_mock.Mocker() as klaviyo:
        klaviyo.get(f"{KLAVIYO}api/lists", json={"data": []})
        client.send_request("GET", f"{KLAVIYO}api/lists", request_kwargs={})
    assert seen == [f"acquire {KLAVIYO}api/lists", "update 200"]


# -- what the unit tests rely on: unit_tests/conftest.py, test_rate_limits.py, test_check.py ------------------


@internal(
    "MovingWindowCallRatePolicy._bucket.rates",
    "unit_tests/test_rate_limits.py",
    "to read back the rates each endpoint's policy was built with",
)
def a_moving_window_policy_keeps_its_rates_in_its_bucket() -> None:
    call_rate = importlib.import_module("airbyte_cdk.sources.streams.call_rate")
    rate = call_rate.Rate(limit=3, interval=timedelta(seconds=1))
    policy = call_rate.MovingWindowCallRatePolicy(rates=[rate], matchers=[])
    rates = getattr(getattr(policy, "_bucket", None), "rates", None)
    assert rates is not None and [(r.limit, r.interval) for r in rates] == [(3, 1000)], f"its bucket's rates: {rates}"


@internal(
    "airbyte_cdk.sources.streams.http.rate_limiting.time",
    "unit_tests/conftest.py (backoff_sleeps)",
    "to record the CDK's retry waits instead of sleeping them: the module sleeps through its `time` import",
)
def the_rate_limiting_module_sleeps_through_its_time_import() -> None:
    rate_limiting = find("airbyte_cdk.sources.streams.http:rate_limiting")
    assert hasattr(rate_limiting, "time"), "it has no `time` (the fixture replaces it in every unit test)"
    code = inspect.getsource(rate_limiting)
    assert re.search(r"^import time$", code, flags=re.M) and "time.sleep(" in code, (
        "it no longer sleeps with time.sleep"
    )


@internal(
    "airbyte_cdk.test.entrypoint_wrapper._run_command(source, args)",
    "unit_tests/test_check.py",
    "to run check in process and read its output, errors included",
)
def the_test_entrypoint_runs_a_command_in_process() -> None:
    binds(find("airbyte_cdk.test.entrypoint_wrapper:_run_command"), "source", "args")
