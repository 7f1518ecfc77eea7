"""Process-wide settings the connector's CLI changes before a command, each measured on the events read.

They touch the whole interpreter (the garbage collector, glibc's malloc, the GIL's
switch interval, `requests`' chunk size), so only the CLI (run.py) applies them,
never an in-process caller such as PyAirbyte's or the CDK's test entrypoint. Set
SOURCE_KLAVIYO_DEFAULT_RUNTIME=1 to run with Python's and the libraries' defaults
(to tell whether a problem comes from here): only speed and memory change.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys

import requests.models

OPT_OUT_VARIABLE = "SOURCE_KLAVIYO_DEFAULT_RUNTIME"


def tune_process() -> None:
    """Apply every setting below, unless SOURCE_KLAVIYO_DEFAULT_RUNTIME is set."""
    if os.environ.get(OPT_OUT_VARIABLE):
        return
    collect_garbage_rarely()
    limit_malloc_arenas()
    read_bodies_in_large_chunks()
    finish_pages_between_switches()


def collect_garbage_rarely() -> None:
    """Records are plain JSON trees without reference cycles, freed by reference counting as soon as they are
    written; the cyclic collector only re-scans them. Measured on 300k events, its default thresholds cost 40% of
    the CPU. What start-up allocated is frozen, and the collector runs rarely."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 1_000)


# glibc's mallopt parameter for the number of malloc arenas (M_ARENA_MAX in malloc.h).
M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 1) -> None:
    """Worker threads parse pages of a megabyte or more; glibc gives each thread its own malloc arena
    and keeps what every arena once held, which measured 160 MB peak RSS on 300k events instead of
    110 MB with two arenas. One arena: 106, 111 and 116 MB at 100k, 1M and 3M events instead of 114,
    121 and 127 with two, within the run-to-run spread of CPU (the workers allocate holding the GIL,
    so they rarely wait for the arena's lock). Not glibc (musl, macOS): nothing to do."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)


def read_bodies_in_large_chunks(chunk: int = 1 << 16) -> None:
    """requests reads a body in chunks of 10 KB, each a socket read that gives up the GIL and must win it
    back from the threads parsing other pages: about 150 of them for a page of 1,000 events. Measured on
    500k events: 2.9 s of system time and 250k context switches at 10 KB, 1.4 s and 110k at 64 KB; a
    client thread spends 1.9 ms on a page instead of 4.0. Larger chunks saved little more and grew the
    peak RSS (the buffers pass glibc's mmap threshold)."""
    requests.models.CONTENT_CHUNK_SIZE = chunk


def finish_pages_between_switches(interval: float = 0.05) -> None:
    """A thread that wants the GIL takes it from a running one after the switch interval, 5 ms by default;
    parsing and serialising a page of 1,000 events takes about 12 ms. So ten workers took turns inside
    their pages and held more half-parsed pages at once. At 50 ms a worker finishes its page, then gives
    the GIL up at its next request. Measured on 1M events, interleaved: 110 MB peak RSS instead of 122,
    the same CPU (13 µs a record); profiles, whose pages are small, cost 62-66 µs a record instead of
    57-61. Threads waiting on the network still take the GIL whenever a worker blocks."""
    sys.setswitchinterval(interval)
