"""Klaviyo's account resources read whole or by their own time field: metrics, templates, tags, forms."""

from __future__ import annotations

from source_klaviyo.streams.base import IncrementalKlaviyoStream, KlaviyoStream


class Metrics(KlaviyoStream):
    """Every metric of the account; Klaviyo offers no time filter on metrics, so always read whole."""

    name = "metrics"
    endpoint_name = "metrics"


class Templates(IncrementalKlaviyoStream):
    name = "templates"
    endpoint_name = "templates"
    cursor_field = "updated"


class Tags(KlaviyoStream):
    name = "tags"
    endpoint_name = "tags"
    relationships = {"tag-group": "tag_group_id"}
    included = ("tag-group",)


class TagGroups(KlaviyoStream):
    name = "tag_groups"
    endpoint_name = "tag-groups"


class Forms(IncrementalKlaviyoStream):
    """Sign-up forms (revision 2026-07-15 and later), incremental on `updated_at`."""

    name = "forms"
    endpoint_name = "forms"
    cursor_field = "updated_at"


class Accounts(KlaviyoStream):
    """The key's account, whose timezone dates the reports: read by the source, not offered as a stream."""

    name = "accounts"
    endpoint_name = "accounts"
