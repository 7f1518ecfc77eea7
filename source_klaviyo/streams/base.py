"""Everything Klaviyo-wide about reading a JSON:API collection, so each stream is a declaration.

`KlaviyoStream` sends the revision and key headers, asks for the largest page
the revision allows, follows `links.next`, turns each resource into a flat
record and leaves retries, rate limits and errors to `errors.py` and
`rate_limits.py`. A stream also declares how it runs in the concurrent engine
(`concurrent_cursor`, `planner`, `resumes`), which the engine only assembles.
`IncrementalKlaviyoStream` adds a cursor whose windows come from the CDK's
ConcurrentCursor (see `state.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor
from airbyte_cdk.sources.streams.concurrent.partitions.partition_generator import PartitionGenerator
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from requests.auth import AuthBase

from source_klaviyo.clock import format_klaviyo_datetime, parse_klaviyo_datetime
from source_klaviyo.config import KlaviyoConfig
from source_klaviyo.endpoints import BODY_MEDIA_TYPE, DEFAULT_REVISION, INCLUDE_ENDPOINTS, JSON_API, Endpoint, endpoint
from source_klaviyo.errors import (
    CONNECT_TIMEOUT,
    KlaviyoErrorHandler,
    KlaviyoHttpClient,
    RetryAfterBackoff,
    json_body,
)
from source_klaviyo.incoming_state import Resumes
from source_klaviyo.planning import slot
from source_klaviyo.rate_limits import whole_share
from source_klaviyo.state import SLICE_END, SLICE_START, build_cursor
from source_klaviyo.streams.context import StreamContext


class KlaviyoStream(HttpStream, ABC):
    """A full-refresh read of one Klaviyo collection endpoint."""

    # Set on each stream's class, except that ParentCollection sets name, endpoint_name, relationships and included
    # per instance (so they are no ClassVar). `name` is a str on the class too, not Stream's cached property.
    name: str
    primary_key: str | list[str] | list[list[str]] | None = "id"
    endpoint_name: str
    # JSON:API relationship name -> record field holding the related id(s).
    relationships: Mapping[str, str] = {}
    # The operators the endpoint allows for a window's lower and upper bound on time_field
    # (None: no upper bound exists, so the window's end is applied to the records instead).
    time_operators: ClassVar[tuple[str, str | None]] = ("greater-or-equal", "less-than")
    # Whether tools/generate_schemas.py writes the schema from Klaviyo's spec (else it is written by hand).
    generated_schema: ClassVar[bool] = True
    # Related resources asked for with `include=` (their linkage fills the relationship fields).
    included: tuple[str, ...] = ()
    # Whether an interrupted full refresh resumes from its STATE (discover's `is_resumable`).
    resumes_full_refresh: ClassVar[bool] = False
    # Whether the user picks the cursor in the configured catalog (else the stream's own).
    catalog_defined_cursor: ClassVar[bool] = False
    # Whether the read looks up `event_metrics` for this stream (their ids come in the context's choices).
    reads_event_metrics: ClassVar[bool] = False
    # Whether the read looks up the account's timezone and metrics for this stream (the context's report context).
    needs_report_context: ClassVar[bool] = False
    # The concurrent cursor the CDK's adapter attaches (convert_to_concurrent_stream; `planner` for windowed streams).
    # Stream declares its legacy checkpoint Cursor here, and the adapter ignores that when it assigns, as here.
    cursor: Cursor | None  # type: ignore[assignment]

    def __init__(self, context: StreamContext) -> None:
        self.context = context
        self._config = context.config
        self._endpoint = self.endpoint_facts(context.config.revision)
        self._budget = context.budget
        self._now = context.now
        self.slots = context.slots
        self.incremental = self.name in context.choices.incremental
        self._window_start = context.config.backfill_start(self.name, context.now)
        self._authenticator = self.authenticator(context.config.api_key.get_secret_value())
        super().__init__(authenticator=self._authenticator, api_budget=context.budget)
        self._http_client = self.http_client(self.get_error_handler())  # the CDK built its own: replaced

    @classmethod
    def missing_setting(cls, config: KlaviyoConfig) -> str | None:
        """What the config must still set for this stream to be read (None: nothing). discover offers only
        the streams that need nothing more, so selecting every discovered stream always syncs."""
        if endpoint(config.revision, cls.endpoint_name) is None:
            return f"`revision` {DEFAULT_REVISION} (revision {config.revision} has no /api/{cls.endpoint_name})"
        return None

    @classmethod
    def needs_conversion_metric(cls) -> bool:
        """Whether discover offers the stream only to an account with a conversion metric (campaign and flow
        reports count conversions of one)."""
        return False

    # -- how the stream runs in the concurrent engine (engine.py assembles it) --------------------------------

    def concurrent_cursor(self, state_manager: ConnectorStateManager, repository: MessageRepository) -> Cursor | None:
        """The cursor keeping this stream's state in a read (None: the CDK's final-state cursor, no progress)."""
        return None

    def planner(self, cursor: Cursor, pages: MessageRepository | None) -> PartitionGenerator | None:
        """This stream's partitions, from one of the connector's planners, which send records a page at a time
        to `pages` when given (None: the CDK's partitions, one per slice of `stream_slices`)."""
        return None

    def resumes(self) -> Resumes | None:
        """How this stream resumes from its state in this read (None: it reads in full and ignores its state)."""
        return None

    def endpoint_facts(self, revision: str) -> Endpoint:
        facts = endpoint(revision, self.endpoint_name)
        assert facts is not None, f"a stream is built only where revision {revision} has /api/{self.endpoint_name}"
        return facts

    @property
    def steady_per_minute(self) -> int:
        """The endpoint's steady limit, as far as this connector's `rate_limit_share` of it goes."""
        return whole_share(self._endpoint.steady_per_minute, self._config.rate_limit_share)

    def includes(self) -> tuple[str, ...]:
        """What `include=` asks for: the stream's includes, less those whose scope the key lacks."""
        return tuple(name for name in self.included if name not in self.context.choices.unreadable_includes)

    def include_scopes(self) -> dict[str, str]:
        """The scope each include needs beyond the stream's own (`tags` needs `tags:read`), by include name."""
        scopes = {}
        for name in self.included:
            facts = endpoint(self._config.revision, INCLUDE_ENDPOINTS[name]) if name in INCLUDE_ENDPOINTS else None
            if facts is not None and not set(facts.scopes) <= set(self._endpoint.scopes):
                scopes[name] = facts.scope
        return scopes

    def fields_from(self, include: str) -> list[str]:
        """The record fields an include fills, which a read without it leaves out."""
        return [field for relationship, field in self.relationships.items() if relationship == include]

    def authenticator(self, key: str) -> AuthBase:
        return TokenAuthenticator(token=key, auth_method="Klaviyo-API-Key")

    @property
    def url_base(self) -> str:
        return self._config.api_url

    @property
    def scope(self) -> str:
        return self._endpoint.scope

    @property
    def time_field(self) -> str | None:
        """Attribute the backfill window filters on server-side; None: no time filter."""
        return None

    @property
    def window_start(self) -> datetime | None:
        """Where a first sync (or a full refresh) starts: the later of the backfill window and start_date
        (None: all history). A sync with state resumes from its state instead (see state.py)."""
        return self._window_start

    def path(
        self,
        *,
        stream_state: Mapping[str, Any] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> str:
        # links.next is a full URL that already carries every parameter of the query.
        if next_page_token:
            return str(next_page_token["next"])
        return self._endpoint.path(self._config.revision, self.parent_in_path(stream_slice))

    def parent_in_path(self, stream_slice: Mapping[str, Any] | None) -> str | None:
        """The parent whose children the request asks for (`flows/{id}/flow-actions`); None: not a child endpoint."""
        return None

    def request_headers(
        self,
        stream_state: Mapping[str, Any] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> Mapping[str, str]:
        headers = {"revision": self._config.revision, "Accept": JSON_API}
        if self.http_method == "POST":
            headers["Content-Type"] = BODY_MEDIA_TYPE[self._config.revision]
        return headers

    def request_kwargs(
        self,
        stream_state: Mapping[str, Any] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> Mapping[str, Any]:
        return {"timeout": (CONNECT_TIMEOUT, self._config.request_timeout_seconds)}

    def request_params(
        self,
        stream_state: Mapping[str, Any] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> MutableMapping[str, Any]:
        if next_page_token:
            return {}
        params: MutableMapping[str, Any] = dict(self.extra_params())
        if self.includes():
            params["include"] = ",".join(self.includes())
        if self._endpoint.max_page_size:
            params["page[size]"] = self._endpoint.max_page_size
        filters = [*self.base_filters(), *self.slice_filters(stream_slice), *self.window_filters(stream_slice)]
        if filters:
            params["filter"] = ",".join(filters)
        return params

    def extra_params(self) -> Mapping[str, Any]:
        """Constant query parameters of the endpoint (e.g. include)."""
        return {}

    def base_filters(self) -> list[str]:
        """Filters every request of the stream carries (e.g. the campaign channel)."""
        return []

    def slice_filters(self, stream_slice: Mapping[str, Any] | None) -> list[str]:
        """Filters that tell one partition of the stream from another."""
        return []

    def window(self, stream_slice: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
        """[start, end) of the time window this request reads; full refresh reads from the backfill start on."""
        return (format_klaviyo_datetime(self._window_start) if self._window_start else None), None

    def window_filters(self, stream_slice: Mapping[str, Any] | None) -> list[str]:
        start, end = self.window(stream_slice)
        field = self.time_field
        lower, upper = self.time_operators
        filters = []
        if field and start:
            # greater-than takes one second off (Klaviyo's precision) so the window still includes `start`.
            filters.append(f"{lower}({field},{start if lower == 'greater-or-equal' else _second_before(start)})")
        if field and end and upper:
            filters.append(f"{upper}({field},{end})")
        return filters

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        next_url = (json_body(response).get("links") or {}).get("next")
        if not next_url:
            return None
        if not next_url.startswith(self.url_base):
            # The key travels with every request: never follow a link to another host.
            raise AirbyteTracedException(
                message=f"Klaviyo sent stream '{self.name}' a next-page link outside {self.url_base}; stopping.",
                failure_type=FailureType.system_error,
            )
        return {"next": next_url}

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        # Every page of the slice, in one of the read's slots. Overriding read_records also stops HttpStream
        # from attaching its resumable-full-refresh cursor, which under the concurrent facade reads one page only.
        with slot(self.slots):
            # _read_pages yields what parse_response gives (mappings), but the CDK types it as StreamData.
            yield from self._read_pages(  # type: ignore[misc]
                lambda request, response, state, _slice: self.parse_response(response, stream_slice=_slice),
                stream_slice,
                stream_state,
            )

    def parse_response(
        self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterable[MutableMapping[str, Any]]:
        return [self.flatten(resource) for resource in self.resources(response)]

    def resources(self, response: requests.Response) -> list[Any]:
        """The resources of a page (its `data` list)."""
        body = json_body(response)
        resources = body.get("data") if isinstance(body, dict) else None
        if not isinstance(resources, list):
            raise AirbyteTracedException(
                message=f"Klaviyo answered stream '{self.name}' with a body that has no `data` list.",
                internal_message=f"Unexpected body from {response.request.method} {response.request.path_url}",
                failure_type=FailureType.system_error,
            )
        return resources

    def flatten(self, resource: Mapping[str, Any]) -> MutableMapping[str, Any]:
        """id, the attributes at top level, and the declared relationships as `<name>_id(s)`.

        The record is the resource's own attributes object, not a copy: the parsed page is discarded.
        Parsed JSON holds plain dicts, so `dict` is checked (the Mapping ABC costs more, per record)."""
        record = resource.get("attributes") or {}
        record["id"] = resource["id"]
        links = resource.get("relationships")
        if links:
            for name, field in self.relationships.items():
                linkage = (links.get(name) or {}).get("data")
                if isinstance(linkage, list):
                    record[field] = [item["id"] for item in linkage]
                elif isinstance(linkage, dict):
                    record[field] = linkage["id"]
        return record

    def get_error_handler(self) -> KlaviyoErrorHandler:
        return KlaviyoErrorHandler(
            self.logger, self.name, self.scope, self._config.revision, self._retry_budget, **self.error_overrides()
        )

    @property
    def _retry_budget(self) -> timedelta:
        return timedelta(seconds=self._config.retry_budget_seconds)

    def error_overrides(self) -> Mapping[str, Any]:
        """Keyword arguments of KlaviyoErrorHandler that differ for this stream."""
        return {}

    def get_backoff_strategy(self) -> RetryAfterBackoff:
        return RetryAfterBackoff()

    def http_client(self, error_handler: KlaviyoErrorHandler) -> KlaviyoHttpClient:
        """A client for this stream's requests, under the read's budget, answered through `error_handler`."""
        return KlaviyoHttpClient(
            name=self.name,
            logger=self.logger,
            error_handler=error_handler,
            api_budget=self._budget,
            authenticator=self._authenticator,
            backoff_strategy=self.get_backoff_strategy(),
        )

    def probe(self) -> int | None:
        """HTTP status of a one-record request: 200, or 401/403/410 when the key, its scopes or
        the endpoint fall short; None when there is nothing to ask (the stream has no query).

        Other failures (400, retries exhausted) raise as they would in a read.
        """
        request = self.probe_request()
        if request is None:
            return None
        client = self.http_client(
            _AccessProbeHandler(
                self.logger, self.name, self.scope, self._config.revision, self._retry_budget, **self.error_overrides()
            )
        )
        _, response = client.send_request(
            request.get("method", "GET"),
            self._join_url(self.url_base, self.path()),
            request_kwargs=self.request_kwargs(),
            headers=self.request_headers(),
            params=request.get("params"),
            json=request.get("json"),
        )
        return response.status_code

    def probe_request(self) -> Mapping[str, Any] | None:
        """The cheapest request that shows whether the key can read the stream's endpoint: its first page, one record
        long, without includes (preflight.py asks for the scope of each include on its own)."""
        params = dict(self.extra_params())
        if self._endpoint.max_page_size:
            params["page[size]"] = 1
        if self.base_filters():
            params["filter"] = ",".join(self.base_filters())
        return {"method": "GET", "params": params}

    def retired_message(self) -> str:
        """What a 410 from this stream's endpoint means, in the words of its error handler."""
        return self.get_error_handler().interpret_response(_status(410)).error_message or "HTTP 410 Gone"


class WithArchived(KlaviyoStream, ABC):
    """A collection Klaviyo lists archived records of only when the filter asks for them (campaigns, flows):
    read as two partitions, one per value of `archived`."""

    def stream_slices(self, **kwargs: Any) -> Iterable[Mapping[str, Any] | None]:
        yield {"archived": False}
        yield {"archived": True}

    def slice_filters(self, stream_slice: Mapping[str, Any] | None) -> list[str]:
        return [archived_filter(sliced(stream_slice)["archived"])]


def sliced(stream_slice: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The slice of a request of a stream that reads in slices: its requests and pages always carry one (None is
    the CDK's default for a stream without slices)."""
    assert stream_slice is not None, "a stream read in slices reads each request within one"
    return stream_slice


def archived_filter(archived: bool) -> str:
    return f"equals(archived,{'true' if archived else 'false'})"


class IncrementalKlaviyoStream(KlaviyoStream, ABC):
    """A stream read in time windows of `cursor_field`; state is kept by the ConcurrentCursor the source attaches.

    HttpStream already provides CheckpointMixin's state contract; the concurrent
    engine checkpoints through the cursor instead, one window at a time.
    """

    @property
    @abstractmethod
    def cursor_field(self) -> str:
        """The record field the windows and the state follow (a class attribute in all but profiles)."""

    @property
    def time_field(self) -> str:
        return self.cursor_field

    @property
    def lookback(self) -> timedelta | None:
        """How far a sync after a finished one reads again before that one's newest record (None: not at all)."""
        return None

    def concurrent_cursor(self, state_manager: ConnectorStateManager, repository: MessageRepository) -> Cursor | None:
        return build_cursor(
            self.name,
            self.cursor_field,
            self.window_start,
            self._config.start_date,
            state_manager,
            repository,
            self._now,
            self.lookback,
        )

    def resumes(self) -> Resumes | None:
        return Resumes(self.cursor_field) if self.incremental else None

    def stream_slices(self, **kwargs: Any) -> Iterable[Mapping[str, Any] | None]:
        assert self.cursor is not None, "the engine attaches the stream's cursor before it asks for slices"
        yield from self.cursor.stream_slices()

    def window(self, stream_slice: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
        stream_slice = sliced(stream_slice)
        return stream_slice[SLICE_START], stream_slice[SLICE_END]

    def parse_response(
        self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterable[MutableMapping[str, Any]]:
        return self.within_window(super().parse_response(response, stream_slice=stream_slice), stream_slice)

    def within_window(
        self, records: Iterable[MutableMapping[str, Any]], stream_slice: Mapping[str, Any] | None
    ) -> Iterable[MutableMapping[str, Any]]:
        """`records` without those past the window's end, where the endpoint cannot filter less-than:
        they belong to the next sync, and state never passes the window's end."""
        if self.time_operators[1]:
            return records
        end = parse_klaviyo_datetime(sliced(stream_slice)[SLICE_END])
        return [
            record
            for record in records
            if (value := record.get(self.cursor_field)) is None or parse_klaviyo_datetime(value) < end
        ]


class _AccessProbeHandler(KlaviyoErrorHandler):
    """Lets 401, 403 and 410 through as answers, so a probe can report them instead of raising."""

    def interpret_response(self, response_or_exception: Any = None) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.status_code in PROBE_ANSWERS:
            return ErrorResolution(ResponseAction.IGNORE)
        return super().interpret_response(response_or_exception)


PROBE_ANSWERS = (401, 403, 410)


def _status(code: int) -> requests.Response:
    response = requests.Response()
    response.status_code = code
    return response


def _second_before(value: str) -> str:
    return format_klaviyo_datetime(parse_klaviyo_datetime(value) - timedelta(seconds=1))
