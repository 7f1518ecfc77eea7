"""Record pages (protocol.py): the CDK's serialisation byte for byte, in order, counted, one page a worker."""

from __future__ import annotations

import io
import threading
from collections import defaultdict

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, Type
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor
from hypothesis import given
from hypothesis import strategies as st

from source_klaviyo.protocol import KlaviyoEntrypoint, RecordPage, record_lines, write_all
from source_klaviyo.windows import WindowPlanner
from unit_tests.test_windows import FakeStream, partition_of

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=12,
)
records = st.lists(st.dictionaries(st.text(), json_values, max_size=6), min_size=1, max_size=5)


@given(stream=st.text(min_size=1), records=records, emitted_at=st.integers(0, 2**50))
def test_record_lines_are_the_cdks_serialisation_of_each_record(stream, records, emitted_at):
    expected = "".join(
        AirbyteEntrypoint.airbyte_message_to_string(
            AirbyteMessage(
                type=Type.RECORD, record=AirbyteRecordMessage(stream=stream, data=data, emitted_at=emitted_at)
            )
        )
        + "\n"
        for data in records
    )
    assert record_lines(stream, records, emitted_at) == expected.encode()


@given(data=st.binary(min_size=1, max_size=3_000), most=st.integers(1, 700))
def test_a_page_is_written_whole_where_stdout_takes_part_of_each_write(data, most):
    """As the raw stdout of PYTHONUNBUFFERED does when a signal interrupts a write to a full pipe."""

    class Partial(io.BytesIO):
        def write(self, chunk):
            return super().write(bytes(chunk[:most]))

    out = Partial()
    write_all(out, data)
    assert out.getvalue() == data


def test_a_page_counts_its_records_for_the_next_state():
    counts = defaultdict(float)
    KlaviyoEntrypoint.handle_record_counts(RecordPage("events", [{"id": "a"}, {"id": "b"}], 1), counts)
    record = AirbyteMessage(type=Type.RECORD, record=AirbyteRecordMessage(stream="events", data={}, emitted_at=1))
    KlaviyoEntrypoint.handle_record_counts(record, counts)
    assert counts == {HashableStreamDescriptor(name="events", namespace=None): 3.0}


class Repository:
    """Collects emitted pages; `write` decides whether each is written at once."""

    def __init__(self, write: bool) -> None:
        self.pages: list[RecordPage] = []
        self._write = write

    def emit_message(self, message: RecordPage) -> None:
        self.pages.append(message)
        if self._write:
            message.written.set()


def test_a_pages_newest_record_goes_through_the_cdk_and_the_rest_as_one_page():
    pages = [[{"id": "a"}, {"id": "b"}, {"id": "c"}], [{"id": "d"}], [{"id": "e"}, {"id": "f"}]]
    repository = Repository(write=True)
    planner = WindowPlanner(FakeStream(lambda partition: iter(pages)), [], workers=2, pages=repository)
    partition = partition_of(planner)
    yielded = list(partition.read())
    assert [record.data["id"] for record in yielded] == ["c", "d", "f"]
    assert all(record.associated_slice is partition.to_slice() for record in yielded)
    assert [page.lines.count(b"\n") for page in repository.pages] == [2, 1]
    assert b'"data":{"id":"a"}' in repository.pages[0].lines and b'"data":{"id":"e"}' in repository.pages[1].lines


def test_a_worker_holds_at_most_one_page_unwritten():
    pages = [[{"id": "a"}, {"id": "b"}], [{"id": "c"}, {"id": "d"}]]
    repository = Repository(write=False)
    planner = WindowPlanner(FakeStream(lambda partition: iter(pages)), [], workers=2, pages=repository)
    reading = partition_of(planner).read()
    next(reading), next(reading)  # the first page's newest record, then its rest emitted; the second's newest
    second = threading.Thread(target=lambda: list(reading))
    second.start()
    second.join(0.5)
    assert second.is_alive() and len(repository.pages) == 1, "the second page waits for the first to be written"
    repository.pages[0].written.set()
    second.join(5)
    assert not second.is_alive() and len(repository.pages) == 2
