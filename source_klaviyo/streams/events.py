"""Events: incremental on `datetime`, and a fixed range (events_custom_dates)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from datetime import timedelta
from typing import Any

import requests
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor

from source_klaviyo.config import KlaviyoConfig
from source_klaviyo.endpoints import DEFAULT_REVISION
from source_klaviyo.errors import json_body
from source_klaviyo.streams.context import StreamContext
from source_klaviyo.streams.windowed import WindowedKlaviyoStream
from source_klaviyo.windows import Window, epoch


class Events(WindowedKlaviyoStream):
    """Each event with its metric's id and name (include=metric), its profile's id and, from revision
    2026-07-15, the campaign, flow and message Klaviyo attributes it to (include=attributions).

    `variants` holds the metric ids to read (the read's `event_metrics`), one query
    each (Klaviyo filters events by one metric at a time); None reads every metric.
    """

    name = "events"
    endpoint_name = "events"
    cursor_field = "datetime"
    reads_event_metrics = True
    relationships = {"metric": "metric_id", "profile": "profile_id"}
    # Field -> (relationship, attribute of the related resource), filled from `included`.
    included_attributes = {"metric_name": ("metric", "name")}
    # Field -> relationship of the event's attribution, filled from the included attribution.
    attributed = {
        "campaign_id": "campaign",
        "campaign_message_id": "campaign-message",
        "flow_id": "flow",
        "flow_message_id": "flow-message",
    }

    def __init__(self, context: StreamContext) -> None:
        super().__init__(context)
        self.variants = context.choices.event_metric_ids
        attributions = ("attributions",) if context.config.revision == DEFAULT_REVISION else ()
        self.included = ("metric", *attributions)

    @property
    def lookback(self) -> timedelta | None:
        return timedelta(hours=self._config.event_lookback_hours)

    def fields_from(self, include: str) -> list[str]:
        """The metric's name (its id comes with the event) and the ids of what the event is attributed to."""
        named = [field for field, (relationship, _) in self.included_attributes.items() if relationship == include]
        return named + (list(self.attributed) if include == "attributions" else [])

    def slice_filters(self, stream_slice: Mapping[str, Any] | None) -> list[str]:
        metric = (stream_slice or {}).get("variant")
        return [f"equals(metric_id,'{metric}')"] if metric else []

    def parse_response(
        self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterable[MutableMapping[str, Any]]:
        """The page's events, in one pass (the events' read costs most of the connector's CPU)."""
        resources = self.resources(response)
        names, attributions = {}, {}
        for item in json_body(response).get("included") or ():
            if item["type"] == "metric":
                names[item["id"]] = item["attributes"].get("name")
            elif item["type"] == "attribution":
                attributions[item["id"]] = self.attributed_ids(item.get("relationships") or {})
        records, flatten = [], self.flatten
        for event in resources:
            record = flatten(event)
            record["metric_name"] = names.get(record.get("metric_id"))
            if attributions:
                # The event's first attribution, as Klaviyo lists them.
                linkage = ((event.get("relationships") or {}).get("attributions") or {}).get("data")
                if linkage:
                    record.update(attributions.get(linkage[0]["id"], ()))
            records.append(record)
        return self.within_window(records, stream_slice)

    def attributed_ids(self, relationships: Mapping[str, Any]) -> dict[str, str]:
        """The ids of what an included attribution links its event to, as the event's fields."""
        return {
            field: related["id"]
            for field, relationship in self.attributed.items()
            if (related := (relationships.get(relationship) or {}).get("data"))
        }


class EventsCustomDates(Events):
    """Events after `events_custom_dates.start` up to and including its `end`, in full every sync."""

    name = "events_custom_dates"

    @classmethod
    def missing_setting(cls, config: KlaviyoConfig) -> str | None:
        return None if config.events_custom_dates else "`events_custom_dates` (its start and end)"

    def __init__(self, context: StreamContext) -> None:
        super().__init__(context)
        self._range = context.config.events_custom_dates

    def concurrent_cursor(self, state_manager: ConnectorStateManager, repository: MessageRepository) -> Cursor | None:
        return None  # the same range every sync: nothing to keep

    def ranges(self) -> Iterable[Window]:
        assert self._range is not None, "a read selects this stream only when the config sets its range"
        # (start, end] at Klaviyo's one-second precision is [start + 1 s, end + 1 s).
        yield Window(epoch(self._range.start) + 1, epoch(self._range.end) + 1, self.variants)
