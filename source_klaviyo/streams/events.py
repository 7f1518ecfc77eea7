"""Events: incremental on `datetime`, and a fixed range (events_custom_dates)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import requests

from source_klaviyo.config import KlaviyoConfig
from source_klaviyo.errors import json_body
from source_klaviyo.streams.windowed import WindowedKlaviyoStream
from source_klaviyo.windows import Window, epoch


class Events(WindowedKlaviyoStream):
    """Each event with its metric's id and name (include=metric) and its profile's id.

    `variants` holds the metric ids to read, one query each (Klaviyo filters
    events by one metric at a time); None reads every metric.
    """

    name = "events"
    endpoint_name = "events"
    cursor_field = "datetime"
    relationships = {"metric": "metric_id", "profile": "profile_id"}
    # Field -> (relationship, attribute of the related resource), filled from `included`.
    included_attributes = {"metric_name": ("metric", "name")}

    def extra_params(self) -> Mapping[str, Any]:
        return {"sort": "datetime", "include": "metric"}

    def slice_filters(self, stream_slice: Mapping[str, Any] | None) -> list[str]:
        metric = (stream_slice or {}).get("variant")
        return [f"equals(metric_id,'{metric}')"] if metric else []

    def parse_response(
        self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterable[Mapping[str, Any]]:
        names = {item["id"]: item["attributes"].get("name") for item in json_body(response).get("included") or ()}
        for record in super().parse_response(response, stream_slice=stream_slice):
            record["metric_name"] = names.get(record.get("metric_id"))
            yield record


class EventsCustomDates(Events):
    """Events after `events_custom_dates.start` up to and including its `end`, in full every sync."""

    name = "events_custom_dates"

    def __init__(self, config: KlaviyoConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._range = config.events_custom_dates

    def ranges(self) -> Iterable[Window]:
        # (start, end] at Klaviyo's one-second precision is [start + 1 s, end + 1 s).
        yield Window(epoch(self._range.start) + 1, epoch(self._range.end) + 1, self.variants)
