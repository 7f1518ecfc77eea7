"""Stopping on SIGTERM without losing or cutting anything.

Airbyte stops a source with SIGTERM (a cancel, a pod eviction, a time-out) and
SIGKILLs it some seconds later. Python's default action ends the process at
once, possibly in the middle of a record line the platform then cannot parse,
and without the STATE of what was delivered; as PID 1 in a container, Python
ignores SIGTERM and waits for the SIGKILL. So SIGTERM gets a handler that does
nothing in the main thread it interrupts (a handler that raised could cut the
line being written, one that took a lock could wait for itself when a second
signal interrupts it): the signal's number reaches a watchdog thread through the
wakeup fd, and the watchdog sets `STOP`. Then:

- no request starts: the API budget, which every request of every stream passes
  before it is sent (retries too), raises `SyncStopped` (`stop_point`), and
  planners yield no partition;
- the main thread, the only reader of the engine's queue (`StoppingQueue`),
  prints for a moment (`GRACE`) the pages that were in flight, then only the
  STATE and log messages ahead of the next record, then each stream's last STATE
  once more, and raises `SyncStopped`. A worker queues a partition's STATE right
  after its records, so a STATE covers only records queued before it: stopping
  before the first record not printed, the last STATE printed covers exactly what
  was delivered, and the output ends with it;
- `run.py` prints one TRACE error that says the sync was stopped and exits with
  SIGTERM's own status (a shell or a container reports 143; a parent process sees
  the signal, as PyAirbyte expects of a source it stops) without joining the workers, some of which may wait on a
  full queue (`exit_stopped`).

The watchdog ends the process the same way: at once when the main thread
is not reading the queue (check, discover, the read's preflight: nothing in
flight to deliver), else if the main thread has not `DEADLINE` seconds after the
signal. Both print holding the print buffer's lock, the lock every stdout write
takes, so no line is cut, and only the first prints: one TRACE at most.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
import time
from queue import Empty, Queue
from typing import Any, NoReturn

from airbyte_cdk.entrypoint import PRINT_BUFFER, AirbyteEntrypoint
from airbyte_cdk.models import AirbyteMessage, FailureType, Type
from airbyte_cdk.sources.concurrent_source.partition_generation_completed_sentinel import (
    PartitionGenerationCompletedSentinel,
)
from airbyte_cdk.sources.concurrent_source.stream_thread_exception import StreamThreadException
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.streams.concurrent.partitions.types import PartitionCompleteSentinel, QueueItem
from airbyte_cdk.sources.types import Record
from airbyte_cdk.utils import message_utils
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.errors import trace_error
from source_klaviyo.protocol import write_all

EXIT_CODE = 128 + signal.SIGTERM
# How long after the signal the main thread goes on printing the pages in flight...
GRACE = 3.0
# ...unless none arrives for this long.
IDLE = 0.5
# How often a main thread waiting on an empty queue looks at STOP.
POLL = 0.1
# When the watchdog ends the process, if the main thread has not; the platform waits 10 s before its SIGKILL.
DEADLINE = 8.0
# How long the watchdog waits for a write in progress (to a pipe nobody reads) before it exits without a TRACE.
LOCK_WAIT = 1.0
STOPPED_MESSAGE = "The source was stopped (SIGTERM) before it finished. A sync resumes from the last STATE it emitted."
# What the engine's main thread would do with these once stopped: start partitions or streams, finish streams
# (whose partitions were left unread), or report a worker's failure (a stopped sync reports the stop alone).
ENGINE_ITEMS = (Partition, PartitionCompleteSentinel, PartitionGenerationCompletedSentinel, StreamThreadException)

_queue: StoppingQueue | None = None  # the running command's queue, once SIGTERM is handled
_ended = False  # set once the running command's closing messages are printed


class Stop(threading.Event):
    """An Event that knows when it was set: the grace counts from the signal, however long the main thread
    then takes to finish a write to a slow reader."""

    at = 0.0

    def set(self) -> None:
        self.at = time.monotonic()
        super().set()


STOP = Stop()


class SyncStopped(BaseException):
    """Raised where the stop ends a thread's work. A BaseException, so that the CDK's `except Exception`
    paths neither report it as a stream's failure nor go on reading."""


def install(queue: StoppingQueue) -> None:
    """Handle SIGTERM as the module's docstring says, for the command about to run, which reads through `queue`.
    Called by run.py alone (the CDK's test entrypoint keeps Python's own SIGTERM); tests call run() in-process
    many times, so the handler and the watchdog are set up once."""
    global _queue, _ended
    installed = _queue is not None
    _queue, _ended = queue, False
    if installed:
        return
    wakeup, signals = socket.socketpair()
    signals.setblocking(False)  # the C-level handler writes each caught signal's number here
    signal.set_wakeup_fd(signals.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    # A forked child shares the socket: a SIGTERM sent to it (a pool ending its workers) would reach this
    # process's watchdog and stop it. The child gets Python's own SIGTERM and no wakeup fd instead.
    os.register_at_fork(after_in_child=_forget_in_child)
    threading.Thread(target=_watch, args=(wakeup, signals), name="sigterm-watchdog", daemon=True).start()


def _forget_in_child() -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_point() -> None:
    """Raise SyncStopped once SIGTERM came: called before each request, so that none starts after it."""
    if STOP.is_set():
        raise SyncStopped


def exit_stopped(lock_wait: float = -1) -> NoReturn:
    """Print the TRACE that says the source was stopped, after everything buffered, and end by SIGTERM.

    The process ends as a stopped process does, by the signal's default action: a parent sees it killed by
    SIGTERM (PyAirbyte stops `spec` and `discover` that way and takes any other status for a failure), a shell
    or a container reports 143. As PID 1 in a container, which ignores that action, it exits with EXIT_CODE
    (143) instead. Never the interpreter's exit: it would join the engine's workers, and one blocked on the full
    queue never returns. Holding the lock (and never releasing it) keeps any other thread from printing."""
    global _ended
    if PRINT_BUFFER.lock.acquire(timeout=lock_wait) and not _ended:
        _ended = True
        error = AirbyteTracedException(
            message=STOPPED_MESSAGE,
            internal_message="SIGTERM: stopped requesting and ended after the state of what was delivered.",
            failure_type=FailureType.transient_error,
        ).as_airbyte_message()
        trace_error(error).stack_trace = None
        _write(filter_secrets(AirbyteEntrypoint.airbyte_message_to_string(error)))
    # Any thread may end it so (Python's signal.signal is for the main thread alone): sigaction is per process.
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the signal is on its way; only PID 1, which ignores it, gets past this
    os._exit(EXIT_CODE)


def print_last(*lines: str) -> None:
    """Print the command's closing messages (an error), after everything buffered: once they are out, a stop
    adds no TRACE of its own."""
    global _ended
    with PRINT_BUFFER.lock:
        _ended = True
        _write(*lines)


def _write(*lines: str) -> None:
    """`lines` on stdout after what the print buffer holds (the caller holds its lock)."""
    PRINT_BUFFER.flush()
    out = sys.__stdout__
    assert out is not None
    # Whole even when a signal cuts the raw write short; the buffer's type as in protocol.KlaviyoEntrypoint.read.
    write_all(out.buffer, "".join(f"{line}\n" for line in lines).encode())  # type: ignore[arg-type]


def _watch(wakeup: socket.socket, signals: socket.socket) -> None:
    """Waits for SIGTERM (other signals with a Python handler, as SIGINT, come through `wakeup` too);
    holds `signals` open for the handler."""
    while signal.SIGTERM not in wakeup.recv(64):
        pass
    STOP.set()
    if (_queue is not None and _queue.reading) or _ended:
        # The main thread ends a read within GRACE + IDLE, or is ending the command: it has until DEADLINE.
        time.sleep(DEADLINE)
    exit_stopped(lock_wait=LOCK_WAIT)


def is_record(item: QueueItem) -> bool:
    return isinstance(item, Record) or (isinstance(item, AirbyteMessage) and item.type == Type.RECORD)


class StoppingQueue(Queue[QueueItem]):
    """The engine's queue, which only the main thread reads (`get`). Once `stop` is set, `get` hands out what
    can go out without a STATE running ahead of the records it covers, then raises SyncStopped.

    `get` returns, in order: any record or message during `grace` after the stop (while pages keep arriving
    at least every `idle` seconds); then the messages ahead of the first record it will not print; then each
    stream's last STATE handed out, once more, so that the output ends with the state of what it delivered.
    Items that would start or finish partitions and streams are dropped."""

    def __init__(self, maxsize: int = 0, stop: Stop = STOP, grace: float = GRACE, idle: float = IDLE) -> None:
        super().__init__(maxsize)
        self._stop = stop
        self.reading = False  # whether the engine's loop has started reading
        self._grace = grace
        self._idle = idle
        self._states: dict[Any, AirbyteMessage] = {}  # stream -> the last STATE handed out
        self._repeats: list[AirbyteMessage] | None = None  # the states to hand out again before the end

    def get(self, block: bool = True, timeout: float | None = None) -> QueueItem:
        """The engine's loop calls get() and blocks; here it waits POLL at a time, so as to notice a stop.

        The CDK's print buffer writes what it holds only when a write comes 0.1 s after its last flush: the last
        lines before a quiet spell (a STATE, the log line announcing a long wait) would stay in it until the next
        line, a minute later. Each POLL that brings nothing flushes it."""
        self.reading = True
        item = None
        while item is None and not self._stop.is_set():
            with contextlib.suppress(Empty):
                item = super().get(timeout=POLL)
            if item is None:
                PRINT_BUFFER.flush()
        if not self._stop.is_set():
            assert item is not None, "without a stop, the loop above ends only once it has an item"
            return self._handed_out(item)
        if self._repeats is None:
            # An item that arrived as the stop came (a planner that gave up, say) goes by the stop's rules.
            item = self._deliverable(item)
            if item is not None:
                return self._handed_out(item)
            self._repeats = list(self._states.values())
        if self._repeats:
            return self._repeats.pop(0)
        raise SyncStopped

    def _deliverable(self, item: QueueItem | None) -> QueueItem | None:
        """`item` or the next record or message that may still go out, None when the read ends here."""
        while True:
            grace = self._stop.at + self._grace - time.monotonic()
            if item is None:
                try:
                    item = super().get(timeout=min(grace, self._idle)) if grace > 0 else super().get(block=False)
                except Empty:
                    return None
            if isinstance(item, ENGINE_ITEMS):
                item = None
                continue
            return None if grace <= 0 and is_record(item) else item

    def _handed_out(self, item: QueueItem) -> QueueItem:
        if isinstance(item, AirbyteMessage) and item.type == Type.STATE:
            self._states[message_utils.get_stream_descriptor(item)] = item
        return item
