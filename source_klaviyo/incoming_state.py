"""The state a read is given, in every shape a platform sends, turned into what each stream can resume from.

Platforms send per-stream STATE messages with or without `type` (older
platforms, hand-edited files, other tools) and with a namespace of null or "";
some send LEGACY messages (an object of per-stream states) or one GLOBAL
message. All of them become one STREAM message per stream, without a namespace,
which is what the CDK's state manager looks up: it skips any other shape without
a word. Each state is then checked against the stream it belongs to (state.py
describes the shapes): what cannot be resumed from is dropped, and an inverted or
overlapping window repaired, each with a warning that names the stream and why.
A stream whose state is dropped reads as on a first sync, which re-reads but
never skips. A state that lies in the future is kept, as Airbyte's acceptance
tests expect: the stream reads nothing it covers, and a warning says so.

A connection moved here from the official connector brings that connector's
states, under its stream names and in its shapes (official.py has the facts):
each is taken over as the state of the stream that holds its records here,
with an info line, before the checks above (`taken_over`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from airbyte_cdk.models import AirbyteStateBlob as Blob
from airbyte_cdk.models import (
    AirbyteStateMessage,
    AirbyteStateType,
    AirbyteStreamState,
    StreamDescriptor,
)

from source_klaviyo.clock import EARLIEST_DATE, format_klaviyo_datetime, parse_klaviyo_datetime
from source_klaviyo.official import CURSOR_FORMATS, OFFICIAL_STREAMS
from source_klaviyo.state import MOST_RECENT, NEXT_PAGE, SLICE_END, SLICE_START, UNFINISHED

logger = logging.getLogger("airbyte")
# Clocks disagree a little: a state this far past now is worth a warning, not a state a moment ahead.
FUTURE_TOLERANCE = timedelta(days=1)


def stream_messages(messages: Iterable[AirbyteStateMessage]) -> list[AirbyteStateMessage]:
    """The input state as one STREAM message per stream, without namespace; what is left out is named."""
    by_name: dict[str, AirbyteStateMessage] = {}
    for message in messages:
        for name, namespace, state in _per_stream_states(message):
            if namespace:
                logger.warning(
                    f"The state of stream {name} names the namespace {namespace!r}; this connector's streams have "
                    f"none, so it is read as the state of {name}."
                )
            if name in by_name:
                logger.warning(f"The input holds more than one state of stream {name}; the last one is used.")
            by_name[name] = per_stream(name, state)
    return list(by_name.values())


def _per_stream_states(message: AirbyteStateMessage) -> Iterator[tuple[str, str | None, Any]]:
    """(stream name, namespace, state) of each stream the message holds a state of."""
    if message.type == AirbyteStateType.GLOBAL:
        shared = message.global_.shared_state if message.global_ else None
        if shared and shared.__dict__:
            logger.warning(
                f"Dropping the shared part of a GLOBAL state ({sorted(shared.__dict__)}): "
                "this connector keeps its state per stream."
            )
        for item in (message.global_.stream_states if message.global_ else None) or []:
            yield item.stream_descriptor.name, item.stream_descriptor.namespace, item.stream_state
    elif message.stream is not None and message.type in (AirbyteStateType.STREAM, None):
        descriptor = message.stream.stream_descriptor
        yield descriptor.name, descriptor.namespace, message.stream.stream_state
    elif message.type in (AirbyteStateType.LEGACY, None) and message.data is not None:
        for legacy in legacy_streams(message.data, "a LEGACY state message"):
            yield from _per_stream_states(legacy)  # a STREAM message each, without a namespace
    else:
        kind = message.type.value if message.type else "typeless"
        logger.warning(f"Dropping a {kind} state message that holds no stream's state.")


def legacy_streams(data: Any, where: str) -> list[AirbyteStateMessage]:
    """Per-stream messages from an object mapping stream names to their states (the pre-2022 shape)."""
    if not isinstance(data, Mapping) or not all(isinstance(value, Mapping) for value in data.values()):
        logger.warning(f"Dropping {where}: it is not an object of per-stream states, so no stream can resume from it.")
        return []
    logger.warning(f"Reading {where} (an object of per-stream states) as one state per stream: {sorted(data)}.")
    return [per_stream(name, value) for name, value in data.items()]


def per_stream(name: str, state: Any) -> AirbyteStateMessage:
    blob = state if isinstance(state, Blob) else Blob(**dict(state or {}))
    return AirbyteStateMessage(
        type=AirbyteStateType.STREAM,
        stream=AirbyteStreamState(stream_descriptor=StreamDescriptor(name=name), stream_state=blob),
    )


@dataclass(frozen=True)
class Resumes:
    """How a stream of this read resumes: by its cursor field, per parent when it has a parent field.

    `cursor_field` None: a per-parent full refresh, which resumes only an interrupted sync.
    """

    cursor_field: str | None
    parent_field: str | None = None


class UnusableState(ValueError):
    """Why a stream cannot resume from its state."""


def resumable(
    messages: list[AirbyteStateMessage], rules: Mapping[str, Resumes], now: datetime
) -> list[AirbyteStateMessage]:
    """The states the streams of this read resume from, repaired where they can be; each other one is dropped with
    a warning. `rules` holds the streams that resume; any other stream (a full refresh) reads in full."""
    usable = []
    for message in taken_over(messages):
        assert message.stream is not None, "stream_messages gives each stream's state as a STREAM message"
        name = message.stream.stream_descriptor.name
        state = dict(message.stream.stream_state.__dict__)
        rule = rules.get(name)
        if rule is None or (rule.cursor_field is None and not state.get(UNFINISHED)):
            logger.info(f"Stream {name} is not resumed in this read (a full refresh, or not selected).")
            continue
        if not state:
            logger.info(f"Stream {name} has an empty state: it is read as on a first sync.")
            continue
        try:
            state, moments = (_parents_state if rule.parent_field else _ranges_state)(name, state, rule)
        except UnusableState as problem:
            logger.warning(f"Ignoring the state of stream {name}: {problem}. It is read as on a first sync.")
            continue
        if moments and max(moments) > now + FUTURE_TOLERANCE:
            logger.warning(
                f"The state of stream {name} reaches into the future ({format_klaviyo_datetime(max(moments))}, "
                f"after this sync's now, {format_klaviyo_datetime(now)}): nothing it marks as read is read again, "
                "so this sync reads little or nothing of the stream. If the state is wrong, reset the stream."
            )
        logger.info(f"Stream {name} resumes from its state.")
        usable.append(per_stream(name, state))
    return usable


def _ranges_state(name: str, state: dict[str, Any], rule: Resumes) -> tuple[dict[str, Any], list[datetime]]:
    """A date-range state (or a single cursor value) as it can be resumed from, and the moments it names."""
    if "state_type" not in state:
        if rule.cursor_field not in state:
            raise UnusableState(f"it has no `{rule.cursor_field}` value (it holds {sorted(state)})")
        return state, [_moment(state[rule.cursor_field], f"its `{rule.cursor_field}`")]
    slices = state.get("slices")
    if state["state_type"] != "date-range" or not isinstance(slices, list) or not slices:
        raise UnusableState("it is not a date-range state with {start, end} slices")
    kept, moments = [], []
    for piece in slices:
        if not isinstance(piece, Mapping) or not {SLICE_START, SLICE_END} <= set(piece):
            raise UnusableState("it is not a date-range state with {start, end} slices")
        start, end = (_moment(piece[key], "its date-range slices") for key in (SLICE_START, SLICE_END))
        if piece.get(MOST_RECENT) is not None:
            moments.append(_moment(piece[MOST_RECENT], "its slices' newest records"))
        if start > end:
            logger.warning(
                f"Stream {name}: dropping the state's window {piece[SLICE_START]} to {piece[SLICE_END]}, which ends "
                "before it starts; what it claimed to cover is read again."
            )
            continue
        kept.append(dict(piece))
        moments += [start, end]
    if not kept:
        raise UnusableState("none of its windows ends after it starts")
    ordered = sorted(kept, key=lambda piece: parse_klaviyo_datetime(piece[SLICE_START]))
    for earlier, later in pairwise(ordered):
        if parse_klaviyo_datetime(later[SLICE_START]) < parse_klaviyo_datetime(earlier[SLICE_END]):
            logger.warning(
                f"Stream {name}: the state's windows {earlier[SLICE_START]} to {earlier[SLICE_END]} and "
                f"{later[SLICE_START]} to {later[SLICE_END]} overlap; they are read as one."
            )
    if state.get(UNFINISHED) is not None:
        moments.append(_moment(state[UNFINISHED], f"its `{UNFINISHED}`"))
    return {**state, "slices": kept}, moments


def _parents_state(name: str, state: dict[str, Any], rule: Resumes) -> tuple[dict[str, Any], list[datetime]]:
    """A per-parent state as it can be resumed from, and the moments its cursors name."""
    entries = state.get("states")
    if not isinstance(entries, list) or not all(
        isinstance(entry, Mapping)
        and isinstance(entry.get("partition"), Mapping)
        and isinstance(entry["partition"].get(rule.parent_field), str)
        and isinstance(entry.get("cursor"), Mapping)
        and isinstance(entry.get(NEXT_PAGE, ""), str)
        and "://" not in entry.get(NEXT_PAGE, "")
        for entry in entries
    ):
        raise UnusableState(f"it is not a list of per-{rule.parent_field} states")
    moments = []
    for entry in entries:
        value = entry["cursor"].get(rule.cursor_field) if rule.cursor_field else None
        if value:
            moments.append(_moment(value, f"its `{rule.cursor_field}` values"))
    return state, moments


def _moment(value: Any, what: str) -> datetime:
    try:
        moment = parse_klaviyo_datetime(value)
    except (TypeError, ValueError, AttributeError):
        moment = None
    if moment is None or moment < EARLIEST_DATE:
        raise UnusableState(f"{what} are not all datetimes after 1970 ({value!r})")
    return moment


@dataclass(frozen=True)
class _Taken:
    """A state as one of this connector's streams resumes from it.

    `source` is the stream the input named; `moment` its cursor value (None: a state of this connector's own
    shape, which wins over any other); `note` says how an official state was taken over, once it is the one used.
    """

    message: AirbyteStateMessage
    source: str
    moment: datetime | None = None
    note: str = ""

    @property
    def target(self) -> str:
        assert self.message.stream is not None, "every state here is a STREAM message"
        name: str = self.message.stream.stream_descriptor.name
        return name


def taken_over(messages: Iterable[AirbyteStateMessage]) -> list[AirbyteStateMessage]:
    """The states of the official connector's streams as the states of the streams that hold their records here.

    Its one-value states, its per-partition ones and its datetime formats are read as one cursor value in this
    connector's format, under our stream's name and cursor. Where several states lead to one stream (events and
    events_detailed, lists and lists_detailed, or an official state beside one this connector wrote), this
    connector's own shape wins, else the earliest value: what is read again is never skipped. A state of a
    stream read in full here is not needed and is dropped. Each decision is one log line naming the stream.
    """
    chosen: dict[str, _Taken] = {}
    for message in messages:
        taken = _take_over(message)
        if taken is None:
            continue
        kept, dropped = _preferred(chosen[taken.target], taken) if taken.target in chosen else (taken, None)
        chosen[taken.target] = kept
        if dropped is not None:
            logger.info(
                f"Stream {dropped.source}: its state is not used, {kept.target} resumes from the state of "
                f"{kept.source}{', which is earlier' if dropped.moment and kept.moment else ''}."
            )
    for taken in chosen.values():
        if taken.note:
            logger.info(taken.note)
    return [taken.message for taken in chosen.values()]


def _take_over(message: AirbyteStateMessage) -> _Taken | None:
    assert message.stream is not None, "stream_messages gives each stream's state as a STREAM message"
    name = message.stream.stream_descriptor.name
    state = dict(message.stream.stream_state.__dict__)
    official = OFFICIAL_STREAMS.get(name)
    if official is None or "state_type" in state or not {official.cursor, "states", "state"} & set(state):
        return _Taken(message, name)  # this connector's own shape, or nothing the official connector writes
    if official.resumes is None:
        logger.info(
            f"Stream {name}: the official connector's state is not needed, its records are in "
            f"{', '.join(official.ours)} here, read in full on every sync."
        )
        return None
    target, cursor = official.resumes
    try:
        moment, value = _official_value(state, official.cursor)
    except UnusableState as problem:
        logger.warning(f"Ignoring the state of stream {name}: {problem}. It is read as on a first sync.")
        return None
    original = state.get(official.cursor)
    if (target, cursor) == (name, official.cursor) and isinstance(original, str) and _iso_datetime(original):
        return _Taken(message, name, moment)  # one value this connector reads as it is
    if target == name and cursor == official.cursor and "states" not in state and "state" not in state:
        note = f"Stream {name}: its `{cursor}` {original!r}, in the official connector's format, is read as {value}."
    else:
        note = f"Stream {name} (the official connector's) is taken over as {target}, resuming from `{cursor}` {value}."
    return _Taken(per_stream(target, {cursor: value}), name, moment, note)


def _preferred(first: _Taken, second: _Taken) -> tuple[_Taken, _Taken]:
    """(the state a stream resumes from, the one left out): its own shape, else the earliest."""
    if first.moment is None or (second.moment is not None and first.moment <= second.moment):
        return first, second
    return second, first


def _official_value(state: Mapping[str, Any], cursor: str) -> tuple[datetime, str]:
    """The cursor value of an official state, and as this connector writes it."""
    try:
        moment = _official_moment(state, cursor)
        return moment, format_klaviyo_datetime(moment)
    except OverflowError:  # a date at the edge of those Python holds, moved past it by an offset or a look-back
        raise UnusableState(f"its `{cursor}` is out of the range of dates") from None


def _official_moment(state: Mapping[str, Any], cursor: str) -> datetime:
    """The cursor value of an official state: its one value, or a per-partition one (the CDK's shape).

    A per-partition state holds, once a sync of it has finished, the newest value of all its partitions
    (`state`), which that sync read less its duration in seconds (`lookback_window`) before; else only the
    value of each partition, of which the earliest is where nothing is left unread.
    """
    if "states" not in state and "state" not in state:
        return _official_datetime(state.get(cursor), cursor)
    overall = state.get("state")
    if isinstance(overall, Mapping) and cursor in overall:
        lookback = state.get("lookback_window")
        seconds = lookback if isinstance(lookback, int) and not isinstance(lookback, bool) and lookback > 0 else 0
        return _official_datetime(overall[cursor], cursor) - timedelta(seconds=seconds)
    entries = state.get("states")
    values = [
        entry["cursor"][cursor]
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, Mapping) and isinstance(entry.get("cursor"), Mapping) and cursor in entry["cursor"]
    ]
    if not values:
        raise UnusableState(f"none of its partitions holds a `{cursor}` value")
    return min(_official_datetime(value, cursor) for value in values)


def _official_datetime(value: Any, cursor: str) -> datetime:
    """`value` as this connector reads datetimes, else in one of the official connector's formats."""
    moment = next((moment for moment in _readings(value) if moment is not None), None)
    if moment is None or moment < EARLIEST_DATE:
        raise UnusableState(f"its `{cursor}` is not a datetime after 1970 ({value!r})")
    return moment


def _readings(value: Any) -> Iterator[datetime | None]:
    if isinstance(value, str):
        yield _iso_datetime(value)
        yield from (_formatted_datetime(value, pattern) for pattern in CURSOR_FORMATS)


def _formatted_datetime(value: str, pattern: str) -> datetime | None:
    try:
        return datetime.strptime(value, pattern)  # noqa: DTZ007 - each official format ends in %z
    except ValueError:
        return None


def _iso_datetime(value: str) -> datetime | None:
    try:
        return parse_klaviyo_datetime(value)
    except ValueError:
        return None
