"""Holds each request a test sent to Klaviyo's OpenAPI spec of the revision it names.

Two checks: the simulator's compiled contract (exact path, unknown and required
parameters, enums and maxima, filter fields and operators) and, independently,
openapi-core's request validation against the same spec.
"""

from __future__ import annotations

import json
from functools import cached_property
from urllib.parse import parse_qsl, urlsplit

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

from klaviyo_spec.contract import load_spec, request_contract


class ContractViolation(AssertionError):
    pass


class KlaviyoContract:
    @cached_property
    def _openapi(self) -> dict[str, OpenAPI]:
        # Klaviyo's spec fails strict spec validation (an ambiguous oneOf), so skip that step.
        return {
            revision: OpenAPI.from_dict(dict(load_spec(revision)), config=Config(spec_validator_cls=None))
            for revision in ("2026-07-15", "2023-10-15")
        }

    def validate(self, request: requests.PreparedRequest) -> None:
        where = f"{request.method} {request.url}"
        url = urlsplit(request.url)
        if url.path == "/api/v1/campaigns":
            return self.validate_v1(request)
        revision = request.headers.get("revision")
        if revision not in ("2026-07-15", "2023-10-15"):
            raise ContractViolation(f"{where}: revision header is {revision!r}")
        if not request.headers.get("Authorization", "").startswith("Klaviyo-API-Key pk_"):
            raise ContractViolation(f"{where}: no Klaviyo-API-Key authorization")
        if request.headers.get("Accept") != "application/vnd.api+json":
            raise ContractViolation(f"{where}: does not accept application/vnd.api+json")
        operation = request_contract(revision).operation(request.method, url.path)
        if operation is None:
            raise ContractViolation(f"{where}: not an operation of revision {revision}")
        body = json.loads(request.body) if request.body else None
        violation = operation.check(parse_qsl(url.query, keep_blank_values=True), body)
        if violation:
            raise ContractViolation(f"{where}: {violation.detail}")
        try:
            self._openapi[revision].validate_request(RequestsOpenAPIRequest(request))
        except Exception as error:  # openapi-core raises a family of validation errors
            raise ContractViolation(f"{where}: {error}; {error.__cause__}") from error

    @staticmethod
    def validate_v1(request: requests.PreparedRequest) -> None:
        """The retired v1 API (in no spec we hold): api_key, page and count, no Authorization header."""
        query = dict(parse_qsl(urlsplit(request.url).query))
        if set(query) != {"api_key", "page", "count"} or not 1 <= int(query["count"]) <= 100:
            raise ContractViolation(f"{request.method} {request.url}: v1 takes api_key, page and count (1-100)")
        if "Authorization" in request.headers:
            raise ContractViolation("v1 takes the key in the query, not in an Authorization header")
