"""Campaigns: one stream per messaging channel (Klaviyo requires the channel filter), every campaign's
messages, and the retired v1 API."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from requests.auth import AuthBase

from source_klaviyo.clock import format_klaviyo_datetime
from source_klaviyo.config import KlaviyoConfig
from source_klaviyo.endpoints import DEFAULT_REVISION, V1_CAMPAIGNS, Endpoint
from source_klaviyo.errors import json_body
from source_klaviyo.streams.base import KlaviyoStream, WithArchived
from source_klaviyo.streams.children import ChildStream, ParentCollection, archived_and_not


class Campaigns(WithArchived):
    """Archived and unarchived campaigns of one channel (Klaviyo requires the channel filter)."""

    endpoint_name = "campaigns"
    time_field = "updated_at"
    relationships = {"campaign-messages": "campaign_message_ids", "tags": "tag_ids"}
    included = ("tags",)
    channel: ClassVar[str]

    def base_filters(self) -> list[str]:
        return [channel_filter(self.channel)]


class CampaignsEmail(Campaigns):
    name = "campaigns_email"
    channel = "email"


class CampaignsSms(Campaigns):
    name = "campaigns_sms"
    channel = "sms"


class CampaignsPush(Campaigns):
    name = "campaigns_push"
    channel = "mobile_push"

    @classmethod
    def missing_setting(cls, config: KlaviyoConfig) -> str | None:
        if config.revision != DEFAULT_REVISION:
            return f"`revision` {DEFAULT_REVISION} (revision {config.revision} has no push campaigns)"
        return super().missing_setting(config)


class CampaignMessages(ChildStream):
    """The messages of every campaign of every channel, archived ones too (the campaign streams' window)."""

    name = "campaign_messages"
    endpoint_name = "campaigns/{id}/campaign-messages"
    parent_field = "campaign_id"
    relationships = {"campaign": "campaign_id", "template": "template_id", "image": "image_id"}

    def parents(self) -> Iterator[str]:
        streams = (CampaignsEmail, CampaignsSms, CampaignsPush)
        channels = [stream.channel for stream in streams if not stream.missing_setting(self._config)]
        start = self.window_start
        since = [f"greater-or-equal(updated_at,{format_klaviyo_datetime(start)})"] if start else []
        partitions = [part for channel in channels for part in archived_and_not(channel_filter(channel), *since)]
        return ParentCollection(self, "campaigns", partitions).ids()


def channel_filter(channel: str) -> str:
    return f"equals(messages.channel,'{channel}')"


class CampaignsV1(KlaviyoStream):
    """Campaigns from Klaviyo's v1 API, which Klaviyo retired on 2024-06-30 (it now answers 410 Gone).

    v1 takes the key as the `api_key` query parameter and pages with page/count.
    The key is registered as a secret, so the CDK masks it wherever a URL is logged,
    and the connector's trace messages are masked too (see source.py).
    """

    name = "campaigns_v1"
    endpoint_name = "v1/campaigns"
    generated_schema = False

    @classmethod
    def missing_setting(cls, config: KlaviyoConfig) -> str | None:
        return None if config.legacy_v1_campaigns else "`legacy_v1_campaigns` set to true (v1 is retired)"

    def endpoint_facts(self, revision: str) -> Endpoint:
        return V1_CAMPAIGNS

    def authenticator(self, key: str) -> AuthBase:
        return ApiKeyQueryAuth(key)

    def path(self, **kwargs: Any) -> str:
        return "api/v1/campaigns"

    def request_headers(
        self,
        stream_state: Mapping[str, Any] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> Mapping[str, str]:
        return {"Accept": "application/json"}

    def request_params(
        self,
        stream_state: Mapping[str, Any] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> MutableMapping[str, Any]:
        return {"page": (next_page_token or {}).get("page", 0), "count": V1_CAMPAIGNS.max_page_size}

    def probe_request(self) -> Mapping[str, Any] | None:
        return {"method": "GET", "params": {"page": 0, "count": 1}}

    def probe(self) -> int | None:
        # v1 answered a key it did not know with 403; it had no scopes to lack.
        status = super().probe()
        return 401 if status == 403 else status

    def error_overrides(self) -> Mapping[str, Any]:
        gone = ErrorResolution(
            ResponseAction.FAIL,
            FailureType.config_error,
            "Klaviyo retired its v1 API on 2024-06-30 and answers 410 Gone, so campaigns_v1 cannot be read. "
            "Deselect campaigns_v1; campaigns_email, campaigns_sms and campaigns_push read the same campaigns from "
            "the current API.",
        )
        rejected = ErrorResolution(
            ResponseAction.FAIL, FailureType.config_error, "Klaviyo's v1 API rejected the API key."
        )
        return {"overrides": {410: gone, 401: rejected, 403: rejected}}

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        body = json_body(response)
        page, data = body.get("page", 0), body.get("data") or []
        if not data or (page + 1) * V1_CAMPAIGNS.max_page_size >= body.get("total", 0):
            return None
        return {"page": page + 1}

    def parse_response(
        self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterable[MutableMapping[str, Any]]:
        for item in json_body(response).get("data") or []:
            record = {key: item.get(key) for key in V1_FIELDS}
            record["list_ids"] = [entry.get("id") for entry in item.get("lists") or []]
            record["excluded_list_ids"] = [entry.get("id") for entry in item.get("excluded_lists") or []]
            for field in V1_DATETIMES:
                record[field] = v1_datetime(record[field])
            yield record


V1_FIELDS = (
    "id", "name", "subject", "from_email", "from_name", "status", "status_id", "status_label", "sent_at",
    "send_time", "created", "updated", "num_recipients", "campaign_type", "is_segmented", "message_type",
    "template_id",
)  # fmt: skip
V1_DATETIMES = ("sent_at", "send_time", "created", "updated")


def v1_datetime(value: Any) -> Any:
    """v1's "YYYY-MM-DD HH:MM:SS" (UTC) as ISO-8601 with its offset."""
    if not isinstance(value, str) or not value:
        return value
    try:
        return datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=timezone.utc).isoformat()
    except ValueError:
        return value


class ApiKeyQueryAuth(AuthBase):
    """v1's authentication: the key as the api_key query parameter (set once, even on a retry)."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        assert request.url is not None, "requests prepares the URL before it calls the authenticator"
        parts = urlsplit(request.url)
        query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != "api_key"]
        request.url = urlunsplit(parts._replace(query=urlencode([*query, ("api_key", self._key)])))
        return request
