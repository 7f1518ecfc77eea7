"""What a read of every stream with every backfill window opened must return, from the simulator's data."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset
from integration_tests.klaviyo_sim.data import DAY, iso
from integration_tests.klaviyo_sim.reports import report
from source_klaviyo.report_dates import SERIES_CHUNK_DAYS
from source_klaviyo.streams.reports import REPORT_CLASSES

REPORTS = {cls.name: cls for cls in REPORT_CLASSES}
# The report streams' window under all_history_config: all history would cost a request per year or per 60 days
# at 2 a minute; a month is one request per stream (two for values reports in January).
REPORT_DAYS = 30

WINDOWED = ("events", "profiles", "templates", "lists", "segments", "campaigns_email", "campaigns_sms", "flows")
# Streams whose primary key is a pair: rows are keyed (parent id, profile id).
PAIRS = {"list_memberships": "list_id", "segment_memberships": "segment_id", "list_exclusions": "list_id"}
# Collections read whole, stream -> the simulator's collection.
WHOLE = {
    "metrics": "metrics",
    "flows": "flows",
    "campaign_messages": "campaign-messages",
    "flow_actions": "flow-actions",
    "flow_messages": "flow-messages",
    "tags": "tags",
    "tag_groups": "tag-groups",
    "coupons": "coupons",
    "coupon_codes": "coupon-codes",
    "forms": "forms",
    "catalog_items": "catalog-items",
    "catalog_variants": "catalog-variants",
    "catalog_categories": "catalog-categories",
}


def key(stream: str, record: dict[str, Any]) -> Any:
    """A record's primary key: its id, or (parent id, profile id) for membership and list exclusion rows;
    a report row's groupings and date (its id is a hash of them)."""
    if stream in REPORTS:
        return report_key(stream, record)
    return (record[PAIRS[stream]], record["profile_id"]) if stream in PAIRS else record["id"]


def report_key(stream: str, record: dict[str, Any]) -> tuple:
    cls = REPORTS[stream]
    return tuple(record.get(column) for column in cls.groupings), record["date" if cls.series else "start"]


def keyed(stream: str, records) -> dict[tuple, dict]:
    return {report_key(stream, record): record for record in records}


def first_start(dataset: Dataset, days: int) -> datetime:
    return datetime.fromtimestamp(dataset.now, timezone.utc) - timedelta(days=days)


def report_ids(dataset: Dataset, days: int) -> dict[str, set[tuple]]:
    """Every report stream's keys on a first sync of `days`."""
    return {
        stream: set(expected_report(dataset, stream, report_periods(dataset, stream, first_start(dataset, days))))
        for stream in REPORTS
    }


def report_periods(dataset: Dataset, stream: str, start: datetime) -> list[tuple[datetime, datetime]]:
    """The periods a read from `start` covers, as Klaviyo's docs ask for them: local days (60 to a daily
    series request) or calendar years, the last ending at the simulator's now."""
    zone = ZoneInfo(dataset.sizes.timezone)
    now = datetime.fromtimestamp(dataset.now, zone)
    day = start.astimezone(zone).date()
    if not REPORTS[stream].series:
        day = day.replace(month=1, day=1)
    periods, begin = [], datetime.combine(day, time(), tzinfo=zone)
    while begin < now:
        following = (
            begin.date() + timedelta(days=SERIES_CHUNK_DAYS)
            if REPORTS[stream].series
            else begin.date().replace(year=begin.year + 1, month=1, day=1)
        )
        end = min(datetime.combine(following, time(), tzinfo=zone), now)
        periods.append((begin, end))
        begin = end
    return periods


def expected_report(dataset: Dataset, stream: str, periods) -> dict[tuple, dict]:
    """The simulator's own answer for each period to the request the connector sends (its group_by), as rows
    keyed (groupings, date)."""
    cls = REPORTS[stream]
    rows = {}
    for start, end in periods:
        attributes = {
            "statistics": list(cls.statistics),
            "timeframe": {"start": start.isoformat(), "end": end.isoformat()},
        }
        if cls.series:
            attributes["interval"] = "daily"
        if cls.needs_conversion_metric():
            attributes["conversion_metric_id"] = dataset.metrics[0].id  # Placed Order
        if cls.takes_group_by:
            attributes["group_by"] = list(cls.groupings)
        results, dates = report(dataset, cls.endpoint_name.removesuffix("-reports"), attributes)
        for result in results:
            groupings = tuple(result["groupings"].get(column) for column in cls.groupings)
            for index, date in enumerate(dates or [start.isoformat()]):
                values = {name: value[index] if dates else value for name, value in result["statistics"].items()}
                rows[(groupings, date)] = values
    return rows


def utc(epoch: int) -> str:
    return iso(epoch).replace("+00:00", "Z")


def custom_dates(dataset: Dataset) -> tuple[int, int]:
    """A week of events ending a week before the simulator's now."""
    return dataset.now - 14 * DAY, dataset.now - 7 * DAY


def all_history_config(dataset: Dataset, url: str, key: str = FULL_ACCESS_KEY, **extra: Any) -> dict[str, Any]:
    """Every stream readable, each window opened to all history, so a read returns all the data."""
    start, end = custom_dates(dataset)
    week_start = dataset.now - dataset.now % DAY - 21 * DAY
    aggregate = {
        "metric_id": dataset.metrics[0].id,
        "measurements": ["count", "sum_value"],
        "by": ["$attributed_flow"],
        "interval": "day",
        "filter": [
            f"greater-or-equal(datetime,{utc(week_start)})",
            f"less-than(datetime,{utc(week_start + 14 * DAY)})",
        ],
    }
    return {
        "api_key": key,
        "api_url": url,
        "backfill_window_days": {**dict.fromkeys(WINDOWED, 0), **dict.fromkeys(REPORTS, REPORT_DAYS)},
        "events_custom_dates": {"start": utc(start), "end": utc(end)},
        "metric_aggregates": json.dumps({"data": {"type": "metric-aggregate", "attributes": aggregate}}),
        "legacy_v1_campaigns": True,
        **extra,
    }


def all_history_ids(dataset: Dataset) -> dict[str, set[Any]]:
    """Every stream's keys (see `key`) under all_history_config (metric_aggregates aside: its ids are hashes)."""
    events = dataset.events
    start, end = custom_dates(dataset)
    campaigns = dataset.collection("campaigns")
    visible = range(events.first_at_or_after(dataset.visible_until + 1))
    profiles = dataset.profiles
    shown = [i for i in range(profiles.count) if profiles.updated[i] <= dataset.visible_until]
    return {
        "campaigns_v1": {c.id for c in campaigns},
        **{
            f"campaigns_{name}": {c.id for c in campaigns if c.fields["messages.channel"] == channel}
            for name, channel in (("email", "email"), ("sms", "sms"), ("push", "mobile_push"))
        },
        **{stream: {r.id for r in dataset.collection(name)} for stream, name in WHOLE.items()},
        "templates": {r.id for r in dataset.collection("templates")},
        "lists": {r.id for r in dataset.collection("lists")},
        "segments": {r.id for r in dataset.collection("segments")},
        **{
            f"{kind[:-1]}_memberships": {
                (parent.id, profiles.ids[index])
                for parent in dataset.collection(kind)
                for index, _ in dataset.members(kind, parent.id)
            }
            for kind in ("lists", "segments")
        },
        "global_exclusions": {profiles.ids[i] for i in shown if dataset.suppression(i)},
        "list_exclusions": {
            (list_id, profiles.ids[i]) for i in shown for list_id, _, _ in dataset.list_suppressions(i)
        },
        "profiles": {
            dataset.profiles.ids[i]
            for i in range(dataset.profiles.count)
            if dataset.profiles.updated[i] <= dataset.visible_until
        },
        "events": {events.record(i).id for i in visible if i not in dataset.late_events},
        **report_ids(dataset, REPORT_DAYS),
        "events_custom_dates": {
            events.record(i).id for i in range(events.first_at_or_after(start + 1), events.first_at_or_after(end + 1))
        },
    }


def default_window_ids(dataset: Dataset) -> dict[str, set[str]]:
    """Every stream's ids on a first sync with only a key set: each stream's own backfill window, read at
    the simulator's now (the connector under test reads the same pinned now)."""
    ids = all_history_ids(dataset)
    two_years = dataset.now - 730 * DAY
    for stream in ("templates", "lists", "segments"):
        ids[stream] = {r.id for r in dataset.collection(stream) if r.times["updated"] >= two_years}
    profiles = dataset.profiles
    ids["profiles"] = {profiles.ids[i] for i in range(profiles.count) if profiles.created[i] >= two_years}
    events = dataset.events
    first = events.first_at_or_after(dataset.now - 30 * DAY)
    ids["events"] = {events.record(i).id for i in range(first, events.first_at_or_after(dataset.now))}
    ids.update(report_ids(dataset, 365))
    for stream in ("campaigns_v1", "events_custom_dates"):  # not offered without their settings
        del ids[stream]
    return ids
