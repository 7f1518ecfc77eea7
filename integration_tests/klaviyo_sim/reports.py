"""Klaviyo's Reporting API (values and series reports) computed from the simulator's own data.

`report(dataset, kind, attributes)` is the one place the numbers come from: the
server answers with it and tests call it for the expected answer. What is
allowed (statistics, group-bys and their defaults, required ones, filterable
attributes, their operators and allowed values, each series interval's longest
timeframe) is read from the 2026-07-15 spec's request schemas and descriptions.

- campaign-values: a campaign message is reported when its campaign's send time
  (`scheduled_at`) falls in the time frame (Klaviyo reports campaigns by send date);
  its numbers count every event attributed to it up to now.
- flow-values / flow-series: events attributed to a flow message whose time falls
  in the time frame (series: in each bucket of the account's timezone).
- form-values / form-series: the simulator has no form events, so each live form
  version gets counts per hour drawn from (seed, form id, version, hour); a form has
  one version (two when it runs an A/B test) and data from its creation on.
- segment-values / segment-series: members_added = members who joined in the
  bucket, total_members = members joined before its end, nobody leaves.

Statistics: recipients and delivered are the Received Email/SMS events; opens,
clicks and unsubscribes count their events and *_unique(s) their distinct profiles;
conversions are events of the conversion metric (value: their `$value`). Bounces,
failures and spam complaints never happen. SMS cost one credit and $0.01 a
message. Rates are fractions of delivered (of recipients for delivery, bounce and
failure rates), 0 without a denominator, and capped at 1 because the simulated
events are not a funnel (an open need not follow a receipt). Floats are rounded
to 6 decimals. Only groupings with any activity in the time frame are returned,
sorted by their grouping values.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from integration_tests.klaviyo_sim import timeframes
from integration_tests.klaviyo_sim.data import METRICS, Dataset, Events, Record, _stable, mix
from klaviyo_spec.contract import Violation, split_top_level
from klaviyo_spec.report_rules import Rules, rules

KINDS = (
    "campaign-values",
    "flow-values",
    "flow-series",
    "form-values",
    "form-series",
    "segment-values",
    "segment-series",
)
REVISION = "2026-07-15"
MAX_LIST = 100  # items in one list filter
SEND_CHANNELS = {"email": "email", "sms": "sms", "mobile_push": "push-notification"}
SMS_PRICE = 0.01
UNSUPPORTED_GROUPS = {"group", "group_name", "tag_id", "tag_name"}  # grouping one message into several rows


# -- filters -------------------------------------------------------------------------------------


def _strings(text: str) -> list[str] | None:
    """A quoted string, or a [list] of them, as a list; None when it is neither."""
    text = text.strip()
    items = split_top_level(text[1:-1]) if text.startswith("[") and text.endswith("]") else [text]
    values = []
    for item in items:
        item = item.strip()
        if len(item) < 2 or item[0] not in "\"'" or item[-1] != item[0]:
            return None
        values.append(item[1:-1])
    return values


def parse_filter(expression: str, allowed: Rules) -> list[tuple[str, str, list[str]]] | Violation:
    """`and(op(attribute,value),...)` into (operator, attribute, values), held to the spec's rules."""
    terms: list[tuple[str, str, list[str]]] = []
    pending = [expression]
    while pending:
        match = re.fullmatch(r"\s*([a-z-]+)\((.*)\)\s*", pending.pop(0), re.S)
        if not match:
            return Violation(f"Invalid filter: {expression!r}.", None)
        operator, inner = match.groups()
        if operator == "and":
            pending = split_top_level(inner) + pending
            continue
        if operator in ("or", "not"):
            return Violation("Only AND can be used to combine filters.", None)
        arguments = split_top_level(inner)
        values = _strings(arguments[1]) if len(arguments) == 2 else None
        if values is None:
            return Violation(f"Invalid filter term {operator}({inner}).", None)
        attribute = arguments[0].strip()
        if attribute not in allowed.filters:
            return Violation(
                f"'{attribute}' is not a valid filter attribute; use one of {sorted(allowed.filters)}.", None
            )
        if operator not in allowed.filters[attribute]:
            return Violation(
                f"'{operator}' is not a valid operator for '{attribute}'; use {sorted(allowed.filters[attribute])}.",
                None,
            )
        if operator == "equals" and arguments[1].strip().startswith("["):
            return Violation(f"equals({attribute},...) takes one value, not a list.", None)
        if len(values) > MAX_LIST:
            return Violation(f"A list filter may hold at most {MAX_LIST} items; {attribute} has {len(values)}.", None)
        unknown = [value for value in values if value not in allowed.filter_values.get(attribute, (value,))]
        if unknown:
            listed = ", ".join(allowed.filter_values[attribute])
            return Violation(f"When filtering on {attribute}, allowed values are {listed}; not {unknown[0]!r}.", None)
        if any(term[1] == attribute for term in terms):
            return Violation(f"Only one filter can be used per attribute; {attribute} has several.", None)
        terms.append((operator, attribute, values))
    return terms


def _passes(facts: Mapping[str, Any], terms: list[tuple[str, str, list[str]]]) -> bool:
    for operator, attribute, values in terms:
        actual = facts.get(attribute)
        held = set(actual) if isinstance(actual, list) else {actual}
        if operator == "contains-all" and not set(values) <= held:
            return False
        if operator != "contains-all" and not held & set(values):
            return False
    return True


# -- units: what a report row is made of ------------------------------------------------------------


def _tags(dataset: Dataset, record: Record) -> tuple[list[str], list[str]]:
    ids = list(record.relationships.get("tags", []))
    return ids, [tag.attributes["name"] for tag_id in ids if (tag := dataset.find("tags", tag_id))]


def _campaign_units(dataset: Dataset, start: int, end: int) -> list[tuple[dict, str]]:
    units = []
    for campaign in dataset.collection("campaigns"):
        if not start <= campaign.times["scheduled_at"] < end:
            continue
        tag_ids, tag_names = _tags(dataset, campaign)
        for message in dataset.children("campaign-messages", campaign.id):
            channel = message.fields["channel"]
            facts = {
                "campaign_id": campaign.id,
                "campaign_message_id": message.id,
                "campaign_message_name": message.extra["retired"]["label"],
                "send_channel": SEND_CHANNELS[channel],
                "text_message_format": "sms" if channel == "sms" else None,
                "variation": None,
                "variation_name": None,
                "tag_id": tag_ids,
                "tag_name": tag_names,
            }
            units.append((facts, message.id))
    return units


def _flow_units(dataset: Dataset) -> list[tuple[dict, str]]:
    units = []
    for message in dataset.collection("flow-messages"):
        flow = dataset.find("flows", message.fields["flow.id"])
        if flow is None:
            continue
        tag_ids, tag_names = _tags(dataset, flow)
        channel = message.attributes["channel"]
        facts = {
            "flow_id": flow.id,
            "flow_name": flow.attributes["name"],
            "flow_message_id": message.id,
            "flow_message_name": message.fields["name"],
            "send_channel": SEND_CHANNELS[channel],
            "text_message_format": "sms" if channel == "sms" else None,
            "variation": None,
            "variation_name": None,
            "tag_id": tag_ids,
            "tag_name": tag_names,
        }
        units.append((facts, message.id))
    return units


# -- numbers -----------------------------------------------------------------------------------------

MESSAGE_COUNTS = ("received", "received_sms", "opens", "clicks", "unsubscribes", "conversions", "value")
MESSAGE_SETS = ("opened_by", "clicked_by", "unsubscribed_by", "converted_by")
FORM_COUNTS = (
    "viewed_form",
    "viewed_form_uniques",
    "submits",
    "closed_form",
    "closed_form_uniques",
    "qualified_form",
    "qualified_form_uniques",
    "viewed_form_step",
    "viewed_form_step_uniques",
    "submitted_form_step",
    "submitted_form_step_uniques",
)
EVENT_COUNTS = {  # metric name -> (count, set of profiles)
    "Opened Email": ("opens", "opened_by"),
    "Clicked Email": ("clicks", "clicked_by"),
    "Unsubscribed": ("unsubscribes", "unsubscribed_by"),
}


def _empty(family: str) -> dict[str, Any]:
    if family in ("campaign", "flow"):
        return {**dict.fromkeys(MESSAGE_COUNTS, 0), **{name: set() for name in MESSAGE_SETS}}
    if family == "form":
        return dict.fromkeys(FORM_COUNTS, 0)
    return {"members_added": 0, "total_members": 0}


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for name, value in other.items():
        into[name] = into[name] | value if isinstance(value, set) else into[name] + value


def _active(raw: Mapping[str, Any]) -> bool:
    return any(value for name, value in raw.items() if name != "total_members")


def _ratio(part: float, whole: float, cap: bool = True) -> float:
    if not whole:
        return 0.0
    return round(min(1.0, part / whole) if cap else part / whole, 6)


def _message_statistics(raw: Mapping[str, Any]) -> dict[str, Any]:
    delivered = recipients = raw["received"]
    value = round(float(raw["value"]), 6)
    opens_unique, clicks_unique = len(raw["opened_by"]), len(raw["clicked_by"])
    conversion_uniques, unsubscribe_uniques = len(raw["converted_by"]), len(raw["unsubscribed_by"])
    spend = round(raw["received_sms"] * SMS_PRICE, 6)
    return {
        "recipients": recipients,
        "delivered": delivered,
        "bounced": 0,
        "failed": 0,
        "bounced_or_failed": 0,
        "spam_complaints": 0,
        "opens": raw["opens"],
        "opens_unique": opens_unique,
        "clicks": raw["clicks"],
        "clicks_unique": clicks_unique,
        "unsubscribes": raw["unsubscribes"],
        "unsubscribe_uniques": unsubscribe_uniques,
        "conversions": raw["conversions"],
        "conversion_uniques": conversion_uniques,
        "conversion_value": value,
        "open_rate": _ratio(opens_unique, delivered),
        "click_rate": _ratio(clicks_unique, delivered),
        "click_to_open_rate": _ratio(clicks_unique, opens_unique),
        "conversion_rate": _ratio(conversion_uniques, delivered),
        "unsubscribe_rate": _ratio(unsubscribe_uniques, delivered),
        "delivery_rate": _ratio(delivered, recipients),
        "bounce_rate": 0.0,
        "failed_rate": 0.0,
        "bounced_or_failed_rate": 0.0,
        "spam_complaint_rate": 0.0,
        "average_order_value": _ratio(value, raw["conversions"], cap=False),
        "revenue_per_recipient": _ratio(value, recipients, cap=False),
        "message_segment_count_sum": raw["received_sms"],
        "text_message_credit_usage_amount": raw["received_sms"],
        "text_message_spend": spend,
        "text_message_roi": _ratio(value, spend, cap=False),
    }


def _statistics(family: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    if family in ("campaign", "flow"):
        return _message_statistics(raw)
    if family == "form":
        return {**raw, "submit_rate": _ratio(raw["submits"], raw["viewed_form_uniques"])}
    return {**raw, "members_removed": 0, "net_members_changed": raw["members_added"]}


@lru_cache(maxsize=4)
def _by_message(events: Events) -> dict[str, array]:
    """Event indexes (in time order) attributed to each campaign or flow message."""
    found: dict[str, array] = {}
    for index in range(events.count):
        attribution = events.attribution(index)
        if attribution:
            found.setdefault(attribution["campaign-message"] or attribution["flow-message"], array("I")).append(index)
    return found


def _count_events(
    dataset: Dataset, message_id: str, low: int, high: int, metric: int, bounds: list[int], raws: list[dict]
) -> None:
    """Add the visible events attributed to `message_id` with times in [low, high) to their buckets' raws."""
    events = dataset.events
    indexes = _by_message(events).get(message_id, array("I"))
    first = bisect.bisect_left(indexes, events.first_at_or_after(low))
    last = bisect.bisect_left(indexes, events.first_at_or_after(min(high, dataset.visible_until + 1)))
    for index in indexes[first:last]:
        if index in dataset.late_events:
            continue
        raw = raws[bisect.bisect_right(bounds, events.time(index)) - 1]
        kind = events.metric_of[index]
        name = METRICS[kind][0]
        if name in ("Received Email", "Received SMS"):
            raw["received"] += 1
            raw["received_sms"] += name == "Received SMS"
        record = None
        if name in EVENT_COUNTS:
            record = events.record(index)
            count, profiles = EVENT_COUNTS[name]
            raw[count] += 1
            raw[profiles].add(record.fields["profile_id"])
        if kind == metric:
            record = record or events.record(index)
            raw["conversions"] += 1
            raw["converted_by"].add(record.fields["profile_id"])
            raw["value"] += float(record.attributes["event_properties"].get("$value", 0) or 0)


def _form_units(dataset: Dataset) -> list[tuple[dict, tuple[Record, int]]]:
    return [
        ({"form_id": form.id, "form_version_id": f"{form.id}-v{version + 1}"}, (form, version))
        for form in dataset.collection("forms")
        for version in range(2 if form.fields["ab_test"] else 1)
    ]


def _count_form(dataset: Dataset, form: Record, version: int, low: int, high: int, bounds, raws) -> None:
    """Per-hour counts of a live form version, drawn from (seed, form id, version, hour)."""
    if form.fields["status"] != "live":
        return
    salt = _stable(form.id)
    first = max(low, form.times["created_at"])
    hour = first - first % 3600
    stop = min(high, dataset.visible_until + 1)
    while hour < stop:
        at = max(hour, first)
        draw = mix(dataset.seed, 50, salt, version, hour // 3600)
        viewed = draw % 6
        uniques = viewed - (draw >> 4) % (viewed // 2 + 1)
        submits = (draw >> 8) % (uniques // 2 + 1)
        closed = (draw >> 12) % (viewed - submits + 1)
        qualified = (draw >> 16) % 3
        cell = {
            "viewed_form": viewed,
            "viewed_form_uniques": uniques,
            "submits": submits,
            "closed_form": closed,
            "closed_form_uniques": min(closed, uniques),
            "qualified_form": viewed + qualified,
            "qualified_form_uniques": uniques + qualified,
            "viewed_form_step": viewed + submits,
            "viewed_form_step_uniques": uniques + submits,
            "submitted_form_step": submits,
            "submitted_form_step_uniques": submits,
        }
        _merge(raws[bisect.bisect_right(bounds, at) - 1], cell)
        hour += 3600


def _count_members(dataset: Dataset, segment_id: str, low: int, bounds: list[int], ends: list[int], raws) -> None:
    for _, joined in dataset.members("segments", segment_id):
        for raw, end in zip(raws, ends, strict=True):
            raw["total_members"] += joined < end
        if low <= joined < ends[-1]:
            raws[bisect.bisect_right(bounds, joined) - 1]["members_added"] += 1


# -- the report --------------------------------------------------------------------------------------


def check(dataset: Dataset, kind: str, attributes: Mapping[str, Any]) -> tuple | Violation:
    """The request's meaning beyond its schema: (start, end, interval, group_by, filter terms), or why not."""
    family, report_kind = kind.split("-")
    allowed = rules(kind)
    if not attributes.get("statistics"):
        return Violation("statistics must name at least one statistic.", None)
    if family in ("campaign", "flow"):
        metric = attributes.get("conversion_metric_id")
        if metric not in {record.id for record in dataset.collection("metrics")}:
            return Violation(f"conversion_metric_id {metric!r} is not a metric of this account.", None)
    zone = ZoneInfo(dataset.sizes.timezone)
    bounds = timeframes.resolve(attributes["timeframe"], dataset.now, zone)
    if isinstance(bounds, Violation):
        return bounds
    start, end = bounds
    interval = attributes.get("interval") if report_kind == "series" else None
    longest, sentence = allowed.interval_limits.get(interval, (None, ""))
    if longest and end - start > longest:
        return Violation(sentence, None)
    if family == "segment" and start.date() < timeframes.SEGMENT_DATA_START:
        return Violation("Segment data is unavailable before June 1st, 2023; start the timeframe after it.", None)
    group_by = list(attributes.get("group_by") or allowed.default_group_by)
    for name in group_by:
        if name in UNSUPPORTED_GROUPS:
            return Violation(f"The simulator cannot group by {name}.", None)
    missing = [name for name in allowed.required_group_by if name not in group_by]
    if missing:
        return Violation(f"group_by must include {', '.join(missing)}.", None)
    for name, prerequisite in allowed.prerequisites.items():
        if name in group_by and prerequisite not in group_by:
            return Violation(f"Grouping by {name} needs {prerequisite} in group_by too.", None)
    terms = parse_filter(attributes["filter"], allowed) if attributes.get("filter") else []
    if isinstance(terms, Violation):
        return terms
    return start, end, interval, group_by, terms


def report(
    dataset: Dataset, kind: str, attributes: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[str] | None] | Violation:
    """(results, date_times) of a report of `kind` (one of KINDS) for a request's `attributes`; date_times
    is None for values reports. A Violation for a request Klaviyo would refuse."""
    checked = check(dataset, kind, attributes)
    if isinstance(checked, Violation):
        return checked
    start, end, interval, group_by, terms = checked
    family = kind.split("-")[0]
    starts = timeframes.buckets(start, end, interval)
    bounds = [int(moment.timestamp()) for moment in starts]
    ends = bounds[1:] + [int(end.timestamp())]
    low, high = int(start.timestamp()), ends[-1]
    metric = (
        dataset.events.metric_ids.index(attributes["conversion_metric_id"]) if family in ("campaign", "flow") else -1
    )
    rows: dict[tuple, list[dict]] = {}
    groupings: dict[tuple, dict] = {}
    for facts, unit in _units(dataset, family, low, high):
        if not _passes(facts, terms):
            continue
        raws = [_empty(family) for _ in bounds]
        if family == "campaign":  # every event of a message sent in the time frame
            _count_events(dataset, unit, 0, dataset.now + 1, metric, [0], raws)
        elif family == "flow":
            _count_events(dataset, unit, low, high, metric, bounds, raws)
        elif family == "form":
            _count_form(dataset, *unit, low, high, bounds, raws)
        else:
            _count_members(dataset, unit, low, bounds, ends, raws)
        key = tuple(facts.get(name) for name in group_by)
        groupings.setdefault(key, {name: facts.get(name) for name in group_by})
        if key not in rows:
            rows[key] = raws
        else:
            for into, raw in zip(rows[key], raws, strict=True):
                _merge(into, raw)
    results = []
    for key in sorted(rows, key=lambda values: tuple("" if value is None else str(value) for value in values)):
        if not any(_active(raw) for raw in rows[key]):
            continue
        per_bucket = [_statistics(family, raw) for raw in rows[key]]
        statistics = {
            name: [values[name] for values in per_bucket] if interval else per_bucket[0][name]
            for name in attributes["statistics"]
        }
        results.append({"groupings": groupings[key], "statistics": statistics})
    return results, ([moment.isoformat() for moment in starts] if interval else None)


def _units(dataset: Dataset, family: str, low: int, high: int) -> list[tuple[dict, Any]]:
    """(facts to group and filter on, what to count) of every unit a report of `family` is made of."""
    if family == "campaign":
        return _campaign_units(dataset, low, high)
    if family == "flow":
        return _flow_units(dataset)
    if family == "form":
        return _form_units(dataset)
    return [({"segment_id": segment.id}, segment.id) for segment in dataset.collection("segments")]
