"""What Klaviyo's spec allows in a metric-aggregates query beyond its schema: the timezones its `timezone`
description accepts. The simulator refuses the others; a unit test holds the connector's list to it."""

from __future__ import annotations

import re
from functools import cache
from zoneinfo import available_timezones

from klaviyo_spec.contract import load_spec


@cache
def supported_timezones(revision: str) -> frozenset[str]:
    """IANA's names, as written (the field is case-sensitive), less the exceptions the `timezone` description
    names ("a few notable exceptions are `Factory`, `Europe/Kyiv` and `Pacific/Kanton`")."""
    schemas = load_spec(revision)["components"]["schemas"]
    resource = schemas[schemas["MetricAggregateQuery"]["properties"]["data"]["$ref"].rsplit("/", 1)[1]]
    description = resource["properties"]["attributes"]["properties"]["timezone"]["description"]
    listed = re.search(r"exceptions are (.*?)\.\s", description)
    return frozenset(available_timezones() - set(re.findall(r"`([^`]+)`", listed[1] if listed else "")))
