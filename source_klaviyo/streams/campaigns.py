"""Campaigns, one stream per messaging channel (Klaviyo requires the channel filter)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from source_klaviyo.streams.base import KlaviyoStream


class Campaigns(KlaviyoStream):
    """Archived and unarchived campaigns of one channel.

    Klaviyo lists only unarchived campaigns unless the filter asks for archived
    ones, so the stream reads two partitions, one per value of `archived`.
    """

    endpoint_name = "campaigns"
    time_field = "updated_at"
    relationships = {"campaign-messages": "campaign_message_ids", "tags": "tag_ids"}
    channel: ClassVar[str]

    def base_filters(self) -> list[str]:
        return [f"equals(messages.channel,'{self.channel}')"]

    def stream_slices(self, **kwargs: Any) -> Iterable[Mapping[str, Any] | None]:
        yield {"archived": False}
        yield {"archived": True}

    def slice_filters(self, stream_slice: Mapping[str, Any] | None) -> list[str]:
        return [f"equals(archived,{'true' if stream_slice['archived'] else 'false'})"]


class CampaignsEmail(Campaigns):
    name = "campaigns_email"
    channel = "email"


class CampaignsSms(Campaigns):
    name = "campaigns_sms"
    channel = "sms"
