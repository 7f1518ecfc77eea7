"""Every event rendered before the simulator serves, so that a benchmark measures the connector.

Rendering a page of 1,000 events costs the simulator about 45 ms of CPU: fewer pages a second
than Klaviyo serves an account (3,500 a minute). `--prerender` renders each event once at start,
with the same functions the simulator answers with, in one process per core, into files that are
memory-mapped; a page of events is then a few slices of them. Only requests of the one form
prerendered are served from them (the current revision, `include=metric,attributions`, this host);
any other request is rendered as usual.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from array import array
from collections.abc import Callable, Sequence
from mmap import ACCESS_READ, mmap
from pathlib import Path
from typing import Any

import orjson

INCLUDE = ("metric", "attributions")
# An event: (its resource, its included attribution or None), as Python objects to serialise.
Render = Callable[[int], tuple[Any, Any]]


class PrerenderedEvents:
    """Events 0..count-1 as JSON: `data(indexes)` the page's resources, `included(...)` what they link to."""

    def __init__(self, render: Render, count: int, metric_ids: Sequence[str], metric_of: Sequence[int]) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="klaviyo-sim-events-")
        workers = max(1, min(os.cpu_count() or 1, count // 10_000))
        bounds = [count * worker // workers for worker in range(workers + 1)]
        chunks = [(bounds[w], bounds[w + 1], Path(self._folder.name) / f"{w}") for w in range(workers)]
        global _render  # the forked workers inherit it: a closure cannot be sent to them
        _render = render
        if workers == 1:
            offsets = [_render_chunk(chunks[0])]
        else:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                offsets = pool.map(_render_chunk, chunks)
        self._maps = {kind: self._join(kind, [chunk[2] for chunk in chunks]) for kind in ("data", "attribution")}
        self._offsets = {kind: _concatenate([part[kind] for part in offsets]) for kind in ("data", "attribution")}
        self._metric_ids, self._metric_of = metric_ids, metric_of

    def _join(self, kind: str, parts: list[Path]) -> mmap:
        path = Path(self._folder.name) / kind
        with path.open("wb") as joined:
            for part in parts:
                with Path(f"{part}.{kind}").open("rb") as piece:
                    while block := piece.read(1 << 24):
                        joined.write(block)
                Path(f"{part}.{kind}").unlink()
        with path.open("rb") as joined:
            return mmap(joined.fileno(), 0, access=ACCESS_READ) if path.stat().st_size else mmap(-1, 1)

    def data(self, indexes: Sequence[int]) -> orjson.Fragment:
        """The resources of events `indexes`, in that order, as a JSON array."""
        return orjson.Fragment(b"[" + b",".join(self._slices("data", indexes)) + b"]")

    def included(self, indexes: Sequence[int], metric: Callable[[str], Any]) -> list[Any]:
        """What events `indexes` include, each once in the order first linked, as the simulator
        lists it: an event's metric (rendered by `metric(id)`), then its attribution."""
        seen: dict[tuple, Any] = {}
        offsets, attributions = self._offsets["attribution"], self._maps["attribution"]
        for index in indexes:
            metric_id = self._metric_ids[self._metric_of[index]]
            if ("metric", metric_id) not in seen:
                seen[("metric", metric_id)] = metric(metric_id)
            start, end = offsets[index], offsets[index + 1]
            if end > start:
                seen[("attribution", index)] = orjson.Fragment(attributions[start:end])
        return [resource for resource in seen.values() if resource is not None]

    def _slices(self, kind: str, indexes: Sequence[int]) -> list[bytes]:
        """Each event's bytes without the comma that follows it; consecutive events as one slice."""
        offsets, arena = self._offsets[kind], self._maps[kind]
        if isinstance(indexes, range) and indexes.step == 1:
            return [arena[offsets[indexes.start] : offsets[indexes.stop] - 1]] if indexes else []
        return [arena[offsets[index] : offsets[index + 1] - 1] for index in indexes]


_render: Render | None = None


def _render_chunk(chunk: tuple[int, int, Path]) -> dict[str, array]:
    """Render events start..end-1 into `<path>.data` and `<path>.attribution`; their byte offsets.

    The data file holds each event followed by a comma, so that a run of consecutive events is one
    slice; an event without attribution takes no bytes in the other."""
    start, end, path = chunk
    render = _render
    offsets = {"data": array("Q"), "attribution": array("Q")}
    written = {"data": 0, "attribution": 0}
    with Path(f"{path}.data").open("wb") as data, Path(f"{path}.attribution").open("wb") as attribution:
        for index in range(start, end):
            resource, linked = render(index)
            offsets["data"].append(written["data"])
            written["data"] += data.write(orjson.dumps(resource) + b",")
            offsets["attribution"].append(written["attribution"])
            if linked is not None:
                written["attribution"] += attribution.write(orjson.dumps(linked))
    offsets["data"].append(written["data"])
    offsets["attribution"].append(written["attribution"])
    return offsets


def _concatenate(parts: list[array]) -> array:
    """The offsets of consecutive chunks (each ending with its size) as offsets into their concatenation."""
    joined, shift = array("Q"), 0
    for part in parts:
        joined.extend(value + shift for value in part[:-1])
        shift += part[-1]
    joined.append(shift)
    return joined
