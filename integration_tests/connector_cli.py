"""Run the installed `source-klaviyo` command and read its Airbyte messages (for tests, the demo and the benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONNECTOR = str(Path(sys.executable).with_name("source-klaviyo"))


@dataclass
class Run:
    returncode: int
    messages: list[dict[str, Any]]
    stderr: str
    # Seconds from the start to each message's arrival, and to the exit (only for a run_connector(timed=True)).
    arrivals: list[float] = field(default_factory=list)
    ended: float = 0.0

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if message["type"] == kind]

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        return [m["record"]["data"] for m in self.of_type("RECORD") if stream in (None, m["record"]["stream"])]

    def errors(self) -> list[dict[str, Any]]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"]["type"] == "ERROR"]

    def final_states(self) -> list[dict[str, Any]]:
        """The last STATE per stream, as a state file for the next read."""
        latest: dict[str, dict[str, Any]] = {}
        for message in self.of_type("STATE"):
            state = message["state"]
            latest[state["stream"]["stream_descriptor"]["name"]] = {"type": state["type"], "stream": state["stream"]}
        return list(latest.values())

    def stream_state(self, stream: str) -> dict[str, Any] | None:
        for state in self.final_states():
            if state["stream"]["stream_descriptor"]["name"] == stream:
                return state["stream"]["stream_state"]
        return None

    def logs(self, *levels: str) -> list[str]:
        """The log messages at `levels` (every level when none is given)."""
        return [m["log"]["message"] for m in self.of_type("LOG") if not levels or m["log"]["level"] in levels]

    def silences(self, kinds: Iterable[str] | None = None) -> list[tuple[float, float]]:
        """Each stretch (from, to) in which stdout carried no message (of `kinds` only, when given), start to exit."""
        moments = [
            at for at, m in zip(self.arrivals, self.messages, strict=True) if kinds is None or m["type"] in kinds
        ]
        edges = [0.0, *moments, self.ended]
        return list(zip(edges, edges[1:], strict=False))

    @property
    def text(self) -> str:
        return json.dumps(self.messages) + self.stderr


def parse_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The messages in `lines`, each as soon as its line arrives (a live pipe is read as it is written)."""
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield {"type": "UNPARSED", "line": line}


def run_connector(
    command: str,
    folder: Path,
    config: Any = None,
    catalog: Any = None,
    state: Any = None,
    timeout: float = 600,
    flags: Iterable[str] = (),
    after_records: tuple[int, Callable[[], None]] | None = None,
    env: Mapping[str, str] | None = None,
    timed: bool = False,
    program: Sequence[str] = (CONNECTOR,),
) -> Run:
    """`source-klaviyo <command> [flags]` with the given files written into `folder` (a str is written as is).

    `after_records=(n, action)` calls `action` as soon as the n-th record has been printed, while the
    connector goes on reading (e.g. to change the simulator's faults in the middle of a read). `env`
    replaces the environment (e.g. conftest's WALL_CLOCK, without the pinned now). `timed` notes when
    each message arrived (Run.arrivals), as a platform reading the pipe sees it. `program` runs the
    connector another way (scaled_connector.py's budget for the simulator's scaled windows).
    """
    args = [*program, command, *flags]
    for flag, content in (("--config", config), ("--catalog", catalog), ("--state", state)):
        if content is not None:
            path = folder / f"{flag.strip('-')}.json"
            path.write_text(content if isinstance(content, str) else json.dumps(content))
            args += [flag, str(path)]
    if after_records is None and not timed:
        finished = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
        return Run(finished.returncode, list(parse_lines(finished.stdout.splitlines())), finished.stderr)
    count, action = after_records or (0, lambda: None)
    with tempfile.TemporaryFile("w+") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        messages, arrivals, records = [], [], 0
        for message in parse_lines(process.stdout):
            messages.append(message)
            arrivals.append(time.monotonic() - started)
            records += message["type"] == "RECORD"
            if message["type"] == "RECORD" and records == count:
                action()
        process.stdout.close()
        returncode = process.wait(timeout)
        stderr.seek(0)
        return Run(returncode, messages, stderr.read(), arrivals, time.monotonic() - started)


def discovered_catalog(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The catalog `source-klaviyo discover` prints for `config`."""
    return run_connector("discover", folder, config=config).of_type("CATALOG")[0]["catalog"]


def configured_catalog(
    discovered: dict[str, Any], streams: Iterable[str] | None = None, incremental: bool = True
) -> dict[str, Any]:
    """A configured catalog for `streams` (all by default): incremental where the stream supports it."""
    wanted = set(streams) if streams is not None else None
    configured = []
    for stream in discovered["streams"]:
        if wanted is not None and stream["name"] not in wanted:
            continue
        mode = "incremental" if incremental and "incremental" in stream["supported_sync_modes"] else "full_refresh"
        entry = {
            "stream": stream,
            "sync_mode": mode,
            "destination_sync_mode": "append_dedup" if mode == "incremental" else "overwrite",
            "primary_key": stream.get("source_defined_primary_key", [["id"]]),
        }
        if mode == "incremental":
            entry["cursor_field"] = stream["default_cursor_field"]
        configured.append(entry)
    return {"streams": configured}
