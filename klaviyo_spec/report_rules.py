"""What Klaviyo's spec allows in a Reporting API request, read from the words of its request bodies: the
group-bys (allowed, default, required, prerequisites), the filters and the values they take, and the longest
timeframe of each series interval. The simulator refuses what these rules refuse; a unit test holds the
connector's report requests to them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from klaviyo_spec.contract import load_spec

# The first revision with the Reporting API.
REVISION = "2026-07-15"


@dataclass(frozen=True)
class Rules:
    """What the spec allows in one report kind's request."""

    group_by: tuple[str, ...]
    default_group_by: tuple[str, ...]
    required_group_by: tuple[str, ...]
    prerequisites: dict[str, str]
    filters: dict[str, set[str]]  # attribute -> operators
    filter_values: dict[str, tuple[str, ...]]  # attribute -> the only values a filter on it may name
    interval_limits: dict[str, tuple[timedelta, str]]  # series interval -> the longest timeframe, the spec's words


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


@cache
def rules(kind: str) -> Rules:
    family, report_kind = kind.split("-")
    schema = load_spec(REVISION)["components"]["schemas"][f"{family.capitalize()}{report_kind.capitalize()}RequestDTO"]
    resource = load_spec(REVISION)["components"]["schemas"][schema["properties"]["data"]["$ref"].rsplit("/", 1)[1]]
    properties = resource["properties"]["attributes"]["properties"]
    group = properties.get("group_by", {})
    text = group.get("description", "")
    default = re.search(r"grouped by ([a-z_, ]+)\.", text)
    required = re.search(r"are required: ([a-z_, ]+)", text)
    filters: dict[str, set[str]] = {}
    description = properties["filter"]["description"]
    for names, operators in re.findall(
        r"(?:Scalar|List) attributes \(([^)]*)\): Supported operators: ([a-z, -]+)\.", description
    ):
        filters.update({name: set(_names(operators)) for name in _names(names)})
    allowed = re.search(r"Allowed filters are ([a-z_, ]+)\.\nAllowed operators are ([a-z, -]+)\.", description)
    if allowed:
        filters.update({name: set(_names(allowed[2])) for name in _names(allowed[1])})
    values = re.findall(r"When filtering on (\w+), allowed values are ([a-z, -]+)\.", description)
    limits = re.finditer(
        r"If (?P<interval>\w+) is used, the timeframe cannot be longer than (?P<count>\d+) (?P<unit>days|weeks)\.",
        properties.get("interval", {}).get("description", ""),
    )
    return Rules(
        group_by=tuple(group.get("items", {}).get("enum", [])),
        default_group_by=tuple(_names(default[1])) if default else (f"{family}_id",),
        required_group_by=tuple(_names(required[1])) if required else (),
        prerequisites=dict(re.findall(r"prerequisites for (\w+) is (\w+)", text)),
        filters=filters,
        filter_values={name: tuple(_names(listed)) for name, listed in values},
        interval_limits={
            limit["interval"]: (timedelta(**{limit["unit"]: int(limit["count"])}), limit[0]) for limit in limits
        },
    )
