"""What a read of every stream with every backfill window opened must return, from the simulator's data."""

from __future__ import annotations

from typing import Any

from integration_tests.klaviyo_sim import FULL_ACCESS_KEY, Dataset
from integration_tests.klaviyo_sim.data import DAY, iso

WINDOWED = ("events", "profiles", "templates", "lists", "segments", "campaigns_email", "campaigns_sms", "flows")


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
        "backfill_window_days": dict.fromkeys(WINDOWED, 0),
        "events_custom_dates": {"start": utc(start), "end": utc(end)},
        "metric_aggregates": {"data": {"type": "metric-aggregate", "attributes": aggregate}},
        **extra,
    }


def all_history_ids(dataset: Dataset) -> dict[str, set[str]]:
    """Every stream's ids under all_history_config (metric_aggregates aside: its ids are hashes)."""
    events = dataset.events
    start, end = custom_dates(dataset)
    campaigns = dataset.collection("campaigns")
    visible = range(events.first_at_or_after(dataset.visible_until + 1))
    return {
        "campaigns_v1": {c.id for c in campaigns},
        "campaigns_email": {c.id for c in campaigns if c.fields["messages.channel"] == "email"},
        "campaigns_sms": {c.id for c in campaigns if c.fields["messages.channel"] == "sms"},
        "templates": {r.id for r in dataset.collection("templates")},
        "metrics": {r.id for r in dataset.collection("metrics")},
        "lists": {r.id for r in dataset.collection("lists")},
        "segments": {r.id for r in dataset.collection("segments")},
        "flows": {r.id for r in dataset.collection("flows")},
        "profiles": {
            dataset.profiles.ids[i]
            for i in range(dataset.profiles.count)
            if dataset.profiles.updated[i] <= dataset.visible_until
        },
        "events": {events.record(i).id for i in visible if i not in dataset.late_events},
        "events_custom_dates": {
            events.record(i).id for i in range(events.first_at_or_after(start + 1), events.first_at_or_after(end + 1))
        },
    }
