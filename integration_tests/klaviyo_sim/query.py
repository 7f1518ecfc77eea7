"""Klaviyo's filter, sort and page semantics over the simulator's collections."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from integration_tests.klaviyo_sim.data import Record
from klaviyo_spec.contract import parse_filter, split_top_level

COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "greater-than": lambda a, b: a > b,
    "greater-or-equal": lambda a, b: a >= b,
    "less-than": lambda a, b: a < b,
    "less-or-equal": lambda a, b: a <= b,
}
Term = tuple[str, str, Any]


def literal(text: str) -> Any:
    """A filter value: 'quoted' or "quoted", true/false, null, a number, a datetime (as epoch seconds) or ['a','b']."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [literal(part) for part in split_top_level(text[1:-1]) if part.strip()]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return text


def terms_of(expression: str | None) -> list[Term]:
    return (
        [(operator, field, literal(value)) for operator, field, value in parse_filter(expression)] if expression else []
    )


def matches(record: Record, terms: Sequence[Term]) -> bool:
    """Whether the record satisfies every term (its `times`, then `fields`, then `attributes`)."""
    for operator, field, value in terms:
        if field in record.times:
            actual: Any = record.times[field]
        elif field in record.fields:
            actual = record.fields[field]
        else:
            actual = record.attributes.get(field)
        if operator in COMPARE:
            if actual is None or not COMPARE[operator](actual, value):
                return False
        elif isinstance(actual, list):  # a to-many link (an item's categories): one of them must match
            wanted = value if operator == "any" else [value]
            if operator not in ("equals", "any") or not any(item in actual for item in wanted):
                return False
        elif operator == "equals":
            if actual != value:
                return False
        elif operator == "any":
            if actual not in value:
                return False
        elif operator == "contains":
            if value not in (actual or ""):
                return False
        elif operator == "starts-with":
            if not str(actual or "").startswith(value):
                return False
        elif operator == "ends-with" and not str(actual or "").endswith(value):
            return False
    return True


def sort_key(field: str) -> Callable[[Record], Any]:
    def key(record: Record) -> Any:
        value = record.times.get(field, record.fields.get(field, record.attributes.get(field)))
        return (value is None, value if value is not None else 0, record.id)

    return key


def select(records: Sequence[Record], terms: Sequence[Term], sort: str | None) -> list[Record]:
    chosen = [record for record in records if matches(record, terms)]
    if sort:
        chosen.sort(key=sort_key(sort.lstrip("-")), reverse=sort.startswith("-"))
    return chosen


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The offset a cursor stands for; None when it is not one of ours."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, number = text.partition(":")
        return int(number) if kind == "offset" and int(number) >= 0 else None
    except (ValueError, UnicodeDecodeError):
        return None
