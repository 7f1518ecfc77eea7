"""How every Klaviyo response maps to retry or a clear error, in one place.

The CDK's HTTP client calls `KlaviyoErrorHandler` for each response or
transport exception and `RetryAfterBackoff` for how long to wait;
`KlaviyoHttpClient` retries and says so, one line per retry, and when retries
run out raises one error that says what to do. Messages say what the user
should change; none of them quotes the API key (the CDK also masks it in every
log line and trace).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from airbyte_cdk.models import AirbyteErrorTraceMessage, AirbyteMessage, FailureType, StreamDescriptor
from airbyte_cdk.sources.streams.http import HttpClient
from airbyte_cdk.sources.streams.http.error_handlers import (
    BackoffStrategy,
    ErrorResolution,
    HttpStatusErrorHandler,
    ResponseAction,
)
from airbyte_cdk.sources.streams.http.exceptions import BaseBackoffException, UserDefinedBackoffException
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


class KlaviyoHttpClient(HttpClient):
    """The CDK's HTTP client, retrying the way the connector documents and logging each retry once.

    The CDK retries through three nested `backoff` decorators: each retry logs two or three lines (the
    `backoff` library's "Backing off", the CDK's "Caught retryable error" or "Rate limit exceeded"), and
    running out logs "Giving up" and the traceback at ERROR, besides the error the stream then fails with.
    Here a retry logs one line (what failed, which attempt of how many, how long the wait is), and running
    out raises one error that names the stream, what kept failing and what to do; it reaches the output as
    the stream's one TRACE (engine.failures_last), which carries the traceback.
    """

    def _send_with_retry(
        self,
        request: requests.PreparedRequest,
        request_kwargs: Mapping[str, Any],
        log_formatter: Callable[[requests.Response], Any] | None = None,
        exit_on_rate_limit: bool | None = False,
    ) -> requests.Response:
        """Up to MAX_RETRIES retries within the retry budget: after Retry-After when Klaviyo gave one (+1 s, as it
        counts whole seconds), else after 1, 2, 4... s, the last wait cut to what is left of the budget."""
        tries = max(0, self._max_retries) + 1
        deadline = time.monotonic() + self._max_time
        attempt = 1
        while True:
            outcome = self._attempt(request, request_kwargs, log_formatter, exit_on_rate_limit)
            if isinstance(outcome, requests.Response):
                return outcome
            failure = outcome
            left = deadline - time.monotonic()
            asked = failure.backoff + 1 if isinstance(failure, UserDefinedBackoffException) else None
            wait = asked if asked is not None else min(2.0 ** (attempt - 1), left)
            if attempt == tries or left <= 0 or wait > left:
                raise self._retries_ran_out(failure, attempt) from failure
            self._logger.info(
                f"{failure} ({request.method} {urlsplit(request.url or '').path}) Attempt {attempt} of {tries} "
                f"failed; trying again in {round(wait, 1):g} s."
            )
            time.sleep(wait)
            attempt += 1

    def _attempt(
        self,
        request: requests.PreparedRequest,
        request_kwargs: Mapping[str, Any],
        log_formatter: Callable[[requests.Response], Any] | None,
        exit_on_rate_limit: bool | None,
    ) -> requests.Response | BaseBackoffException:
        """Klaviyo's answer, or the failure the error handler says to retry (any other failure raises)."""
        try:
            return self._send(
                request, request_kwargs, log_formatter=log_formatter, exit_on_rate_limit=exit_on_rate_limit
            )
        except BaseBackoffException as failure:
            return failure

    def _retries_ran_out(self, failure: BaseBackoffException, attempts: int) -> AirbyteTracedException:
        """The error the stream ends with: which stream, what kept failing, and what to do about it."""
        budget = f"up to {self._max_retries} times within `retry_budget_seconds` ({self._max_time} s)"
        again = "sync again later (it resumes where this sync stopped), or raise `retry_budget_seconds`"
        throttled = isinstance(failure.response, requests.Response) and failure.response.status_code == 429
        if throttled:
            message = (
                f"Klaviyo kept throttling stream '{self._name}' (HTTP 429) while it retried {budget}. Another "
                f"client may be using the account's API quota: {again}."
            )
        else:
            message = (
                f"Stream '{self._name}' stopped after retrying {budget}; the last failure: {failure} Klaviyo or "
                f"the network may be down: {again}."
            )
        return AirbyteTracedException(
            message=message,
            internal_message=f"Retries ran out after {attempts} attempts: {failure}",
            failure_type=FailureType.transient_error if throttled else failure.failure_type or FailureType.system_error,
            stream_descriptor=StreamDescriptor(name=self._name),
        )

    def _handle_error_resolution(
        self,
        response: requests.Response | None,
        exc: requests.RequestException | None,
        request: requests.PreparedRequest,
        error_resolution: ErrorResolution,
        exit_on_rate_limit: bool | None = False,
    ) -> None:
        """An answer the connector maps to IGNORE is one its caller reads and reports in its own words (a probe
        reads the status, a per-parent stream warns of a deleted parent, a report stops at its daily cap); the
        CDK would log it too, at INFO, whether or not the caller has anything to say about it."""
        if error_resolution.response_action == ResponseAction.IGNORE:
            self._evict_key(request)  # what the CDK does for an answer it will not retry
            return
        super()._handle_error_resolution(response, exc, request, error_resolution, exit_on_rate_limit)


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
