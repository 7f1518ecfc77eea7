"""Adaptive windows: cuts without gaps or overlaps, hand-offs that keep state exact, a planner that always ends."""

from __future__ import annotations

from itertools import pairwise

import pytest

from source_klaviyo.windows import (
    MIN_FIRST_WINDOW_SECONDS,
    Window,
    WindowPartition,
    WindowPlanner,
    cut,
    formatted,
)

DAY = 86_400


def assert_tiles(windows, start, end):
    """The windows cover [start, end) exactly: consecutive, no gap, no overlap."""
    assert windows[0].start == start and windows[-1].end == end
    assert all(a.end == b.start for a, b in pairwise(windows))
    assert all(window.end > window.start for window in windows)


@pytest.mark.parametrize("length, pieces", [(10, 3), (DAY, 7), (3, 10), (1, 4), (30 * DAY + 17, 20)])
def test_a_cut_tiles_the_window(length, pieces):
    windows = cut(Window(1_000, 1_000 + length, ("m",)), pieces)
    assert_tiles(windows, 1_000, 1_000 + length)
    assert len(windows) == min(pieces, length)
    assert {window.variants for window in windows} == {("m",)}


class FakeStream:
    """Stands in for a windowed stream: `pages` decides what each window's read does."""

    name = "events"
    page_size = 1_000
    hands_off_pages = True

    def __init__(self, read=None):
        self._read = read or (lambda partition: iter(()))

    def read_window(self, partition):
        return self._read(partition)


def queued(planner):
    """The planner's waiting windows, in the order workers get them."""
    return [entry[-1] for entry in sorted(planner._pending)]


def partition_of(planner, start=0, end=100 * DAY):
    """A running partition of `planner`, as its generate() starts them."""
    planner.started()
    return WindowPartition(planner, Window(start, end))


def test_a_dense_first_page_narrows_the_window_and_hands_off_the_rest_in_density_sized_pieces():
    planner = WindowPlanner(FakeStream(), [], workers=4)
    partition = partition_of(planner)
    # 1,000 records on the first page spanned an hour: about 2,400 pages remain in 100 days.
    assert partition.hand_off(at=3_600, records_seen=1_000, first=0, last=3_600)

    assert partition.window == Window(0, 3_600)
    assert dict(partition.to_slice()) == {"start": formatted(0), "end": formatted(3_600)}
    handed = queued(planner)
    assert len(handed) == 4  # for every worker (this one's about to be free)
    assert_tiles(handed, 3_600, 100 * DAY)


def test_rests_are_cut_only_for_idle_workers_and_are_read_earliest_first():
    """Every window started leaves a gap in the state until its rest is read; cut only for workers that
    would otherwise wait, and read earliest first, the state stays a few slices long."""
    planner = WindowPlanner(FakeStream(), [], workers=4)
    late = partition_of(planner, 50 * DAY, 100 * DAY)
    early = partition_of(planner, 0, 50 * DAY)
    assert late.hand_off(at=50 * DAY + 3_600, records_seen=1_000, first=50 * DAY, last=50 * DAY + 3_600)
    assert len(queued(planner)) == 3  # four workers, one of them still reading `early`
    assert early.hand_off(at=3_600, records_seen=1_000, first=0, last=3_600)
    # Every worker has a window waiting: the dense early rest goes back whole, and is read first.
    assert queued(planner)[0] == Window(3_600, 50 * DAY)
    assert len(queued(planner)) == 4
    assert_tiles(queued(planner)[1:], 50 * DAY + 3_600, 100 * DAY)


def test_a_window_ends_with_its_page_and_a_short_rest_goes_back_whole():
    planner = WindowPlanner(FakeStream(), [], workers=4)
    partition = partition_of(planner, 0, 10_000)
    # 1,000 records in 4,000 s: the remaining 6,000 s hold about 1.5 pages, one window's worth.
    assert partition.hand_off(at=4_000, records_seen=1_000, first=0, last=4_000)
    assert partition.window == Window(0, 4_000)
    assert queued(planner) == [Window(4_000, 10_000)]


@pytest.mark.parametrize(
    "hands_off, first, last", [(False, 0, 3_600), (True, 500, 500)], ids=["no-hand-off", "one-second"]
)
def test_no_hand_off_for_a_stream_that_does_not_or_a_page_that_cannot_be_cut(hands_off, first, last):
    stream = FakeStream()
    stream.hands_off_pages = hands_off
    planner = WindowPlanner(stream, [], workers=4)
    partition = partition_of(planner)
    assert not partition.hand_off(at=last, records_seen=1_000, first=first, last=last)
    assert partition.window == Window(0, 100 * DAY)


def test_the_slice_keeps_its_identity_when_the_window_narrows():
    planner = WindowPlanner(FakeStream(), [], workers=4)
    partition = partition_of(planner)
    window_slice = partition.to_slice()
    cursor_values = {window_slice: "2026-01-01T00:00:00Z"}  # how the CDK's cursor keys what it observed
    partition.hand_off(at=3_600, records_seen=1_000, first=0, last=3_600)
    assert partition.to_slice() is window_slice and cursor_values[partition.to_slice()] == "2026-01-01T00:00:00Z"


def test_the_planner_cuts_ranges_first_and_yields_handed_off_windows_until_all_are_read():
    def read(partition):
        if partition.window.start == 0:  # the first window turns out dense
            partition.hand_off(at=60, records_seen=1_000, first=0, last=60)
        return iter(())

    planner = WindowPlanner(FakeStream(read), [Window(0, 8 * MIN_FIRST_WINDOW_SECONDS)], workers=2)
    read_windows = []
    for partition in planner.generate():
        list(partition.read())
        read_windows.append(partition.window)

    first_cut = 4  # 2 * workers pieces, each at least MIN_FIRST_WINDOW_SECONDS long
    assert len(read_windows) > first_cut
    assert_tiles(sorted(read_windows, key=lambda w: w.start), 0, 8 * MIN_FIRST_WINDOW_SECONDS)


def test_a_short_range_is_not_cut_below_the_minimum_first_window():
    planner = WindowPlanner(FakeStream(), [Window(0, MIN_FIRST_WINDOW_SECONDS // 2)], workers=8)
    windows = []
    for partition in planner.generate():
        list(partition.read())
        windows.append(partition.window)
    assert windows == [Window(0, MIN_FIRST_WINDOW_SECONDS // 2)]


def test_a_failed_partition_stops_the_planner_instead_of_leaving_it_waiting():
    def read(partition):
        raise RuntimeError("Klaviyo is down")

    planner = WindowPlanner(FakeStream(read), [Window(0, 10 * MIN_FIRST_WINDOW_SECONDS)], workers=3)
    partitions = planner.generate()
    first = next(partitions)
    with pytest.raises(RuntimeError):
        list(first.read())
    assert planner.failed
    assert list(partitions) == [], "no more windows once one failed; the sync reports the failure"


def test_records_carry_the_partitions_slice_for_the_cursor():
    stream = FakeStream(lambda partition: iter([[{"id": "a"}, {"id": "b"}]]))
    planner = WindowPlanner(stream, [], workers=2)
    partition = partition_of(planner)
    records = list(partition.read())
    assert [record.data["id"] for record in records] == ["a", "b"]
    assert all(record.associated_slice is partition.to_slice() for record in records)
    assert partition.stream_name() == "events"
