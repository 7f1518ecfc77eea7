"""How every Klaviyo response maps to retry or a clear error, in one place.

The CDK's HTTP client calls `KlaviyoErrorHandler` for each response or
transport exception and `RetryAfterBackoff` for how long to wait. Messages say
what the user should change; none of them quotes the API key (the CDK also
masks it in every log line and trace).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import orjson
import requests
from airbyte_cdk.models import AirbyteErrorTraceMessage, AirbyteMessage, FailureType, StreamDescriptor
from airbyte_cdk.sources.streams.http.error_handlers import (
    BackoffStrategy,
    ErrorResolution,
    HttpStatusErrorHandler,
    ResponseAction,
)
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.endpoints import DEFAULT_REVISION

# Bounded retries: 9 tries in all, within the config's retry_budget_seconds (10 minutes by
# default), so a fault that never clears ends the sync with an error instead of hanging it.
MAX_RETRIES = 8
# Seconds to connect; the read timeout is the config's request_timeout_seconds.
CONNECT_TIMEOUT = 10

_NO_BODY = object()


def json_body(response: requests.Response) -> Any:
    """The response's JSON, parsed once and kept on the response (the handler and the parser both need it)."""
    body = response.__dict__.get("_klaviyo_json", _NO_BODY)
    if body is _NO_BODY:
        body = orjson.loads(response.content)
        response.__dict__["_klaviyo_json"] = body
    return body


def key_rejected_message() -> str:
    return (
        "Klaviyo rejected the API key (HTTP 401). Check that `api_key` is a current private key "
        "(pk_...) of the account you want to read, and that it has not been revoked."
    )


def missing_scopes_message(scope_by_stream: Mapping[str, str]) -> str:
    """One sentence for every stream whose endpoint answered 403, grouped by the scopes it needs
    (each written as an Endpoint writes them: "`lists:read` and `profiles:read`")."""
    streams_by_scope: dict[str, list[str]] = {}
    for stream, scope in scope_by_stream.items():
        streams_by_scope.setdefault(scope, []).append(stream)
    needs = "; ".join(
        f"{', '.join(sorted(streams))} need{'s' if len(streams) == 1 else ''} {scope}"
        for scope, streams in sorted(streams_by_scope.items())
    )
    return (
        f"The API key lacks read scopes (HTTP 403): {needs}. Add the scopes to the key in Klaviyo "
        "(Settings > API keys) or deselect those streams."
    )


def klaviyo_error_details(response: requests.Response) -> str:
    """Klaviyo's own words from an error body: each error's detail and the parameter it blames."""
    try:
        errors = json_body(response).get("errors") or []
    except (ValueError, AttributeError):
        return response.text[:300] or "(empty body)"
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, Mapping):
            continue
        detail = error.get("detail") or error.get("title") or error.get("code") or "no detail"
        parameter = (error.get("source") or {}).get("parameter")
        parts.append(f"{detail} (parameter: {parameter})" if parameter else str(detail))
    return "; ".join(parts) or response.text[:300] or "(empty body)"


class KlaviyoErrorHandler(HttpStatusErrorHandler):
    """Klaviyo's status codes, plus one case the status alone cannot show: a 200 whose body is not JSON."""

    def __init__(
        self,
        logger: logging.Logger,
        stream_name: str,
        scope: str,
        revision: str,
        retry_budget: timedelta,
        overrides: Mapping[int, ErrorResolution] | None = None,
        bad_request: FailureType = FailureType.system_error,
    ) -> None:
        """`overrides` replace the answer to a status for one stream; `bad_request` is whose fault a 400 is
        (the connector's, unless the request carries what the user wrote, as metric_aggregates does)."""
        self._stream_name = stream_name
        self._bad_request = bad_request
        retry = ResponseAction.RETRY
        transient = FailureType.transient_error
        mapping: dict[int | str | type[Exception], ErrorResolution] = {
            401: ErrorResolution(ResponseAction.FAIL, FailureType.config_error, key_rejected_message()),
            403: ErrorResolution(
                ResponseAction.FAIL, FailureType.config_error, missing_scopes_message({stream_name: scope})
            ),
            404: ErrorResolution(
                ResponseAction.FAIL,
                FailureType.system_error,
                f"Klaviyo answered 404 Not Found for stream '{stream_name}' on revision {revision}.",
            ),
            410: ErrorResolution(ResponseAction.FAIL, FailureType.config_error, _gone_message(stream_name, revision)),
            408: ErrorResolution(
                retry, transient, f"Klaviyo timed out a request of stream '{stream_name}' (HTTP 408)."
            ),
            429: ErrorResolution(
                ResponseAction.RATE_LIMITED,
                transient,
                f"Klaviyo throttled stream '{stream_name}' (HTTP 429).",
            ),
        }
        mapping.update((overrides or {}).items())
        super().__init__(logger, error_mapping=mapping, max_retries=MAX_RETRIES, max_time=retry_budget)

    def interpret_response(self, response_or_exception: requests.Response | Exception | None = None) -> ErrorResolution:
        if isinstance(response_or_exception, requests.RequestException):
            return ErrorResolution(
                ResponseAction.RETRY,
                FailureType.transient_error,
                f"Request of stream '{self._stream_name}' failed before Klaviyo answered "
                f"({type(response_or_exception).__name__}).",
            )
        if not isinstance(response_or_exception, requests.Response):
            return super().interpret_response(response_or_exception)
        status = response_or_exception.status_code
        if response_or_exception.ok:
            try:
                json_body(response_or_exception)
            except orjson.JSONDecodeError:
                return ErrorResolution(
                    ResponseAction.RETRY,
                    FailureType.transient_error,
                    f"Klaviyo sent an incomplete or non-JSON body to stream '{self._stream_name}'.",
                )
            return ErrorResolution(ResponseAction.SUCCESS)
        if status == 400:
            return ErrorResolution(
                ResponseAction.FAIL,
                self._bad_request,
                f"Klaviyo rejected a request of stream '{self._stream_name}' (HTTP 400): "
                f"{klaviyo_error_details(response_or_exception)}",
            )
        if status >= 500:
            return ErrorResolution(
                ResponseAction.RETRY,
                FailureType.transient_error,
                f"Klaviyo answered HTTP {status} (server error) to stream '{self._stream_name}'.",
            )
        return super().interpret_response(response_or_exception)


def _gone_message(stream_name: str, revision: str) -> str:
    if revision != DEFAULT_REVISION:
        return (
            f"Klaviyo answered 410 Gone to stream '{stream_name}': revision {revision} is retired. "
            f"Set `revision` to {DEFAULT_REVISION}."
        )
    return f"Klaviyo answered 410 Gone to stream '{stream_name}': the endpoint is retired."


class RetryAfterBackoff(BackoffStrategy):
    """Wait as long as Klaviyo's Retry-After says (429s carry it); otherwise let the CDK back off exponentially."""

    def backoff_time(
        self,
        response_or_exception: requests.Response | requests.RequestException | None,
        attempt_count: int,
    ) -> float | None:
        if not isinstance(response_or_exception, requests.Response):
            return None
        value = response_or_exception.headers.get("Retry-After")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None


class StreamFailed(AirbyteTracedException):
    """Ends a read with the error a failed stream raised, as that stream's one TRACE message."""

    def __init__(self, trace: AirbyteMessage) -> None:
        error = trace_error(trace)
        super().__init__(
            message=error.message,
            internal_message=error.internal_message,
            failure_type=error.failure_type,
            stream_descriptor=error.stream_descriptor,
        )
        self._trace = trace

    def as_airbyte_message(self, stream_descriptor: StreamDescriptor | None = None) -> AirbyteMessage:
        return self._trace


def trace_error(message: AirbyteMessage) -> AirbyteErrorTraceMessage:
    """The error of an error TRACE (as AirbyteTracedException builds them: its trace always holds the error)."""
    assert message.trace is not None and message.trace.error is not None, "an error TRACE carries its error"
    return message.trace.error


def config_error(message: str) -> AirbyteTracedException:
    """A problem the user fixes in the config, catalog or input files: one TRACE, no stack trace (run.py)."""
    return AirbyteTracedException(message=message, failure_type=FailureType.config_error)
