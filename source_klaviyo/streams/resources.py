"""Klaviyo's account resources: metrics, flows, templates, lists and segments."""

from __future__ import annotations

from source_klaviyo.streams.base import IncrementalKlaviyoStream, KlaviyoStream


class Metrics(KlaviyoStream):
    """Every metric of the account; Klaviyo offers no time filter on metrics, so always read whole."""

    name = "metrics"
    endpoint_name = "metrics"


class Flows(KlaviyoStream):
    name = "flows"
    endpoint_name = "flows"
    time_field = "updated"
    relationships = {"flow-actions": "flow_action_ids", "tags": "tag_ids"}


class Templates(IncrementalKlaviyoStream):
    name = "templates"
    endpoint_name = "templates"
    cursor_field = "updated"


class Lists(IncrementalKlaviyoStream):
    name = "lists"
    endpoint_name = "lists"
    cursor_field = "updated"
    time_operators = ("greater-than", None)
    relationships = {"tags": "tag_ids"}


class Segments(IncrementalKlaviyoStream):
    name = "segments"
    endpoint_name = "segments"
    cursor_field = "updated"
    time_operators = ("greater-than", None)
    relationships = {"tags": "tag_ids"}
