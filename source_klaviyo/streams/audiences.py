"""Who is in which list or segment, and who may not be emailed: lists, segments, memberships, exclusions."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar

import requests

from source_klaviyo.clock import parse_klaviyo_datetime
from source_klaviyo.state import SLICE_END, SLICE_START
from source_klaviyo.streams.base import IncrementalKlaviyoStream, sliced
from source_klaviyo.streams.children import ChildStream, ParentCollection
from source_klaviyo.streams.windowed import WindowedKlaviyoStream

# The profile fields a membership or exclusion row keeps: the profiles stream has the rest.
CONTACT = ("email", "phone_number")


class Lists(IncrementalKlaviyoStream):
    name = "lists"
    endpoint_name = "lists"
    cursor_field = "updated"
    time_operators = ("greater-than", None)
    relationships = {"tags": "tag_ids"}
    included = ("tags",)


class Segments(IncrementalKlaviyoStream):
    name = "segments"
    endpoint_name = "segments"
    cursor_field = "updated"
    time_operators = ("greater-than", None)
    relationships = {"tags": "tag_ids"}
    included = ("tags",)


class Memberships(ChildStream):
    """The members of every list (or segment): one row per member, incremental on `joined_group_at` per parent.

    Klaviyo keeps no trace of removals, so only a full refresh is the exact current membership.
    """

    cursor_field = "joined_group_at"
    child_key = "profile_id"
    generated_schema = False
    parent_endpoint: ClassVar[str]

    def parents(self) -> Iterator[str]:
        return ParentCollection(self, self.parent_endpoint).ids()

    def extra_params(self) -> Mapping[str, Any]:
        return {**super().extra_params(), "fields[profile]": ",".join((*CONTACT, "joined_group_at"))}

    def flatten(self, resource: Mapping[str, Any]) -> MutableMapping[str, Any]:
        attributes = resource.get("attributes") or {}
        return {
            "profile_id": resource["id"],
            "joined_group_at": attributes.get("joined_group_at"),
            **{field: attributes.get(field) for field in CONTACT},
        }


class ListMemberships(Memberships):
    name = "list_memberships"
    endpoint_name = "lists/{id}/profiles"
    parent_field = "list_id"
    parent_endpoint = "lists"
    primary_key = ["list_id", "profile_id"]


class SegmentMemberships(Memberships):
    name = "segment_memberships"
    endpoint_name = "segments/{id}/profiles"
    parent_field = "segment_id"
    parent_endpoint = "segments"
    primary_key = ["segment_id", "profile_id"]


class Exclusions(WindowedKlaviyoStream):
    """Profiles Klaviyo suppresses from email, read from /api/profiles in windows of the suppression time.

    A profile's suppressions are a list, and Klaviyo matches a window when any of
    them falls in it; a window emits only the suppressions inside it, so each is
    emitted by exactly one window. Pages are not handed off (their order follows
    the profile, not each suppression).
    """

    endpoint_name = "profiles"
    cursor_field = "timestamp"
    hands_off_pages = False
    generated_schema = False
    suppressions: ClassVar[str]  # the key under subscriptions.email.marketing

    @property
    def time_field(self) -> str:
        return f"subscriptions.email.marketing.{self.suppressions}.timestamp"

    def extra_params(self) -> Mapping[str, Any]:
        return {
            "sort": self.time_field,
            "additional-fields[profile]": "subscriptions",
            "fields[profile]": ",".join((*CONTACT, "subscriptions")),
        }

    def parse_response(
        self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterable[MutableMapping[str, Any]]:
        window = sliced(stream_slice)
        start, end = (parse_klaviyo_datetime(window[key]) for key in (SLICE_START, SLICE_END))
        for profile in super().parse_response(response, stream_slice=stream_slice):
            marketing = ((profile.get("subscriptions") or {}).get("email") or {}).get("marketing") or {}
            inside = [
                entry
                for entry in marketing.get(self.suppressions) or []
                if entry.get("timestamp") and start <= parse_klaviyo_datetime(entry["timestamp"]) < end
            ]
            yield from self.rows(profile, inside)

    @abstractmethod
    def rows(self, profile: Mapping[str, Any], suppressions: list[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """The stream's rows for one profile, from its suppressions inside the window."""


class GlobalExclusions(Exclusions):
    """Profiles suppressed from all email (bounced, unsubscribed, marked spam...): one row per profile."""

    name = "global_exclusions"
    suppressions = "suppression"

    def rows(self, profile: Mapping[str, Any], suppressions: list[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        if suppressions:
            newest = max(suppressions, key=lambda entry: parse_klaviyo_datetime(entry["timestamp"]))
            yield {
                **contact(profile),
                "id": profile["id"],
                "reason": newest.get("reason"),
                "timestamp": newest["timestamp"],
            }


class ListExclusions(Exclusions):
    """Profiles suppressed from one list: one row per list and profile."""

    name = "list_exclusions"
    suppressions = "list_suppressions"
    primary_key = ["list_id", "profile_id"]

    def rows(self, profile: Mapping[str, Any], suppressions: list[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        for entry in suppressions:
            yield {
                "list_id": entry.get("list_id"),
                "profile_id": profile["id"],
                **contact(profile),
                "reason": entry.get("reason"),
                "timestamp": entry["timestamp"],
            }


def contact(profile: Mapping[str, Any]) -> dict[str, Any]:
    return {field: profile.get(field) for field in CONTACT}
