"""SIGTERM (shutdown.py): the queue ends a read where every STATE printed covers only records printed, and
no request or partition starts once the stop is set."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from unittest.mock import MagicMock

import pytest
from airbyte_cdk.models import (
    AirbyteLogMessage,
    AirbyteMessage,
    AirbyteStateBlob,
    AirbyteStateMessage,
    AirbyteStateType,
    AirbyteStreamState,
    Level,
    StreamDescriptor,
    Type,
)
from airbyte_cdk.sources.concurrent_source.partition_generation_completed_sentinel import (
    PartitionGenerationCompletedSentinel,
)
from airbyte_cdk.sources.concurrent_source.stream_thread_exception import StreamThreadException
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.streams.concurrent.partitions.types import PartitionCompleteSentinel
from airbyte_cdk.sources.types import Record
from hypothesis import given
from hypothesis import strategies as st

from source_klaviyo import shutdown
from source_klaviyo.endpoints import KLAVIYO_API_URL
from source_klaviyo.protocol import RecordPage
from source_klaviyo.rate_limits import build_budget, usable
from source_klaviyo.shutdown import Stop, StoppingQueue, SyncStopped, is_record
from source_klaviyo.windows import Window, WindowPlanner
from unit_tests.test_rate_limits import drain, request
from unit_tests.test_windows import FakeStream


def state(stream: str, position: int) -> AirbyteMessage:
    return AirbyteMessage(
        type=Type.STATE,
        state=AirbyteStateMessage(
            type=AirbyteStateType.STREAM,
            stream=AirbyteStreamState(
                stream_descriptor=StreamDescriptor(name=stream), stream_state=AirbyteStateBlob(position=position)
            ),
        ),
    )


def log(text: str) -> AirbyteMessage:
    return AirbyteMessage(type=Type.LOG, log=AirbyteLogMessage(level=Level.INFO, message=text))


def engine_items(stream: str) -> list:
    partition = MagicMock(spec=Partition)
    return [
        partition,
        PartitionCompleteSentinel(partition),
        PartitionGenerationCompletedSentinel(MagicMock(name=stream)),
        StreamThreadException(RuntimeError("boom"), stream),
    ]


def handed_out(queue: StoppingQueue, limit: int = 1_000) -> list:
    """What get() hands out until it raises SyncStopped."""
    items = []
    with pytest.raises(SyncStopped):
        while len(items) < limit:
            items.append(queue.get())
    return items


def test_before_a_stop_every_item_comes_out_in_order():
    queue = StoppingQueue(stop=Stop())
    items = [Record({"id": 1}, "events"), state("events", 1), log("x"), *engine_items("events")]
    for item in items:
        queue.put(item)
    assert [queue.get() for _ in items] == items


def test_once_stopped_the_read_ends_before_the_first_record_left_unprinted_after_the_messages_ahead_of_it():
    stop = Stop()
    queue = StoppingQueue(stop=stop, grace=0)
    for item in [Record({"id": 1}, "events"), state("events", 1), state("profiles", 1)]:
        queue.put(item)
        queue.get()
    later = [log("ahead"), state("profiles", 2), Record({"id": 2}, "events"), state("events", 2), log("behind")]
    for item in [*engine_items("events"), *later]:
        queue.put(item)
    stop.set()
    # The messages ahead of the record; then each stream's last STATE once more, so that the output ends with them.
    assert handed_out(queue) == [log("ahead"), state("profiles", 2), state("events", 1), state("profiles", 2)]


kinds = st.sampled_from(["record", "page", "state", "log", "engine"])


@given(
    items=st.lists(st.tuples(kinds, st.sampled_from(["events", "profiles"])), max_size=30),
    stop_at=st.integers(0, 30),
)
def test_no_state_handed_out_covers_a_record_that_was_not(items, stop_at):
    """Whatever the queue holds and wherever the stop comes (with no grace): each STATE handed out comes after
    every record queued before it; after the stop, the messages up to the first record go out, in order, and
    nothing that starts or ends work; the output ends with each stream's last STATE."""
    made = {
        "record": lambda stream, n: Record({"n": n}, stream),
        "page": lambda stream, n: RecordPage(stream, [{"n": n}], 0),
        "state": lambda stream, n: state(stream, n),
        "log": lambda stream, n: log(f"{stream} {n}"),
        "engine": lambda stream, n: engine_items(stream)[n % 4],
    }
    queued = [made[kind](stream, n) for n, (kind, stream) in enumerate(items)]
    stop = Stop()
    queue = StoppingQueue(stop=stop, grace=0)
    for item in queued:
        queue.put(item)
    before = [queue.get() for _ in queued[:stop_at]]
    stop.set()
    after = handed_out(queue)

    states = {}
    for item in before + after:
        if isinstance(item, AirbyteMessage) and item.type == Type.STATE:
            states[item.state.stream.stream_descriptor.name] = item
    repeated = list(states.values())
    assert after[len(after) - len(repeated) :] == repeated
    delivered = before + after[: len(after) - len(repeated)]
    for item in delivered:
        if isinstance(item, AirbyteMessage) and item.type == Type.STATE:
            position = next(i for i, queued_item in enumerate(queued) if queued_item is item)
            assert all(any(out is record for out in delivered) for record in queued[:position] if is_record(record)), (
                "a STATE went out ahead of a record queued before it"
            )
    rest = [item for item in queued[stop_at:] if not isinstance(item, shutdown.ENGINE_ITEMS)]
    first_record = next((i for i, item in enumerate(rest) if is_record(item)), len(rest))
    assert delivered[len(before) :] == rest[:first_record]


def test_during_the_grace_the_pages_in_flight_still_go_out_and_the_read_ends_once_none_arrives():
    stop = Stop()
    queue = StoppingQueue(stop=stop, grace=5, idle=0.2)
    stop.set()

    def in_flight() -> None:
        for n in range(3):
            time.sleep(0.05)
            queue.put(Record({"id": n}, "events"))
        queue.put(state("events", 3))

    threading.Thread(target=in_flight).start()
    started = time.monotonic()
    out = handed_out(queue)
    assert [item.data["id"] for item in out[:3]] == [0, 1, 2] and out[3:] == [state("events", 3)] * 2
    assert time.monotonic() - started < 1


def test_records_that_keep_coming_stop_going_out_when_the_grace_ends():
    stop = Stop()
    queue = StoppingQueue(stop=stop, grace=0.3, idle=0.2)
    stop.set()
    endless = threading.Event()

    def busy() -> None:
        while not endless.is_set():
            queue.put(Record({}, "events"))
            time.sleep(0.01)

    threading.Thread(target=busy).start()
    started = time.monotonic()
    try:
        out = handed_out(queue)
    finally:
        endless.set()
    assert out and time.monotonic() - started < 1.5


def test_a_stop_reaches_a_main_thread_waiting_on_an_empty_queue():
    stop = Stop()
    queue = StoppingQueue(stop=stop, idle=0.1)
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert handed_out(queue) == []
    assert time.monotonic() - started < 0.2 + shutdown.POLL + 0.1 + 0.2


def test_an_engine_item_that_reaches_a_waiting_main_thread_as_the_stop_comes_is_dropped():
    """A planner gives up as the stop comes, while the main thread waits on an empty queue: the CDK must not
    take its giving up for the end of the stream."""
    stop = Stop()
    queue = StoppingQueue(stop=stop, idle=0.1)

    def planner_gives_up() -> None:
        time.sleep(0.05)
        stop.set()
        queue.put(PartitionGenerationCompletedSentinel(MagicMock(name="events")))
        queue.put(state("events", 1))

    threading.Thread(target=planner_gives_up).start()
    assert handed_out(queue) == [state("events", 1)] * 2


@pytest.fixture
def stopped():
    shutdown.STOP.set()
    yield
    shutdown.STOP.clear()


def test_no_request_starts_once_stopped(stopped):
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    with pytest.raises(SyncStopped):
        budget.acquire_call(request("api/flows"))
    with pytest.raises(SyncStopped):
        budget.acquire_call(request("api/no-policy"), block=False)


def test_a_request_waiting_for_its_window_does_not_start_after_the_stop():
    budget = build_budget(KLAVIYO_API_URL, "2026-07-15")
    flows = request("api/flows")
    drain(budget, flows, usable(3))
    raised = []

    def waiting() -> None:
        try:
            budget.acquire_call(flows)
        except SyncStopped as stop:
            raised.append(stop)

    thread = threading.Thread(target=waiting)
    thread.start()
    time.sleep(0.1)
    shutdown.STOP.set()
    try:
        thread.join(5)
    finally:
        shutdown.STOP.clear()
    assert raised


def test_planners_yield_no_partition_once_stopped(stopped):
    planner = WindowPlanner(FakeStream(lambda partition: iter([])), [Window(0, 86_400)], workers=2)
    assert list(planner.generate()) == []


FORK_AND_TERMINATE = """
import os, signal, time
from source_klaviyo import shutdown
shutdown.install(shutdown.StoppingQueue())
ready, started = os.pipe()
child = os.fork()
if child == 0:
    os.write(started, b"x")  # the fork is done, the child's own setup with it
    time.sleep(30)
    os._exit(0)
os.read(ready, 1)
os.kill(child, signal.SIGTERM)
_, status = os.waitpid(child, 0)
time.sleep(0.5)  # the watchdog would have seen a signal meant for this process by now
print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, shutdown.STOP.is_set())
"""


def test_a_sigterm_to_a_forked_child_does_not_stop_the_process_that_forked_it():
    """Fork shares the signal socket: a pool ending its workers with SIGTERM once stopped the process that had
    started them (a test process calling run() in-process; it then exited with 143). Run apart, for that reason."""
    finished = subprocess.run([sys.executable, "-c", FORK_AND_TERMINATE], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, (finished.returncode, finished.stdout, finished.stderr[-500:])
    assert finished.stdout.split() == ["True", "False"], "the child ends by Python's default; nothing stops here"
