"""Records written the way the CDK writes them, a page at a time (the CLI's fast lane).

Per record, the CDK's concurrent engine queues a Record, builds an AirbyteMessage,
serialises it (serpyco, then orjson) and prints it: measured on events, that was
about a third of the connector's CPU. When the connector runs as its own CLI
(`run.py`), a partition instead serialises each page of records into protocol
lines in its worker thread and queues them as one `RecordPage`, through the
message repository; `KlaviyoEntrypoint` writes the page whole and counts its
records into the STATE that follows, as the CDK counts single records. A page
keeps its place in the queue, so no STATE goes out ahead of records it covers.
The lines are byte for byte the CDK's (test_protocol compares them). In-process
callers (the CDK's test entrypoint, the standard suite) get per-record messages.
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO

import orjson
from airbyte_cdk.entrypoint import PRINT_BUFFER, AirbyteEntrypoint
from airbyte_cdk.models import AirbyteMessage, ConnectorSpecification, Type
from airbyte_cdk.sources import Source
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor


def record_lines(stream: str, records: Sequence[Mapping[str, Any]], emitted_at: int) -> bytes:
    """`records` as RECORD messages, one line each, as AirbyteEntrypoint.airbyte_message_to_string writes them
    (UTF-8). Joined once: a page's lines are a megabyte, and each copy of it is one more to allocate and free."""
    head = b'{"type":"RECORD","record":{"stream":' + orjson.dumps(stream) + b',"data":'
    tail = b',"emitted_at":' + str(emitted_at).encode() + b"}}\n"
    parts = [tail + head] * (2 * len(records) + 1)
    parts[0], parts[-1] = head, tail
    parts[1::2] = [orjson.dumps(without_nulls(record)) for record in records]
    return b"".join(parts)


def without_nulls(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The CDK's serialiser leaves out a record's top-level fields that are null (not nested ones)."""
    return {key: value for key, value in record.items() if value is not None} if None in record.values() else record


class RecordPage(AirbyteMessage):
    """Records of one stream, already serialised; `written` is set once they are on stdout."""

    def __init__(self, stream: str, records: Sequence[Mapping[str, Any]], emitted_at: int) -> None:
        super().__init__(type=Type.RECORD)
        self.stream = stream
        self.count = len(records)
        self.lines = record_lines(stream, records, emitted_at)
        self.written = threading.Event()


class KlaviyoEntrypoint(AirbyteEntrypoint):
    """The CDK's entrypoint, writing each RecordPage in its place among the messages and counting its records."""

    def read(
        self, source_spec: ConnectorSpecification, config: Mapping[str, Any], catalog: Any, state: list[Any]
    ) -> Iterable[AirbyteMessage]:
        for message in super().read(source_spec, config, catalog, state):
            if isinstance(message, RecordPage):
                # launch() has printed every message before this one into the CDK's print buffer: flushed, the
                # page goes out after them, as bytes (no decoding, buffering and encoding a megabyte again),
                # holding the buffer's lock so that no thread's log line lands inside it.
                out = sys.__stdout__
                assert out is not None, "the CLI, the only caller that asks for record pages, has a stdout"
                with PRINT_BUFFER.lock:
                    PRINT_BUFFER.flush()
                    # typeshed gives a text stream's buffer a write that returns object; stdout's returns the count.
                    write_all(out.buffer, message.lines)  # type: ignore[arg-type]
                message.written.set()
            else:
                yield message

    @staticmethod
    def handle_record_counts(
        message: AirbyteMessage, stream_message_count: defaultdict[HashableStreamDescriptor, float]
    ) -> AirbyteMessage:
        if isinstance(message, RecordPage):
            stream_message_count[HashableStreamDescriptor(name=message.stream, namespace=None)] += message.count
            return message
        return AirbyteEntrypoint.handle_record_counts(message, stream_message_count)


def write_all(out: BinaryIO, data: bytes) -> None:
    """`data` to `out`, flushed. With PYTHONUNBUFFERED (set in many images) stdout's binary layer is the raw
    file, whose write may take only part of a megabyte when a signal interrupts it."""
    view = memoryview(data)
    while view:
        view = view[out.write(view) :]
    out.flush()


def launch(source: Source, args: list[str]) -> None:
    """airbyte_cdk.entrypoint.launch, with the entrypoint that writes record pages."""
    entrypoint = KlaviyoEntrypoint(source)
    parsed_args = entrypoint.parse_args(args)
    with PRINT_BUFFER:
        for message in entrypoint.run(parsed_args):
            print(f"{message}\n", end="")
