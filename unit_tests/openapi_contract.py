"""Checks a request against Klaviyo's OpenAPI spec for the revision it names.

openapi-core checks parameter types, required parameters and page[size]
maxima; it does not reject unknown parameters, an exact path, the revision
header or filter fields and operators the endpoint does not allow, so those
are checked here from the spec's own parameter lists and filter descriptions.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

SPEC_DIR = Path(
    os.environ.get("KLAVIYO_OPENAPI_DIR", Path(__file__).resolve().parents[2] / "shared" / "klaviyo-openapi")
)
TIME_FIELDS = {"created", "updated", "created_at", "updated_at", "scheduled_at", "datetime"}
_ALLOWED = re.compile(r"`([^`]+)`\s*:\s*((?:`[^`]+`(?:,\s*)?)+)")


class ContractViolation(AssertionError):
    pass


class RevisionContract:
    def __init__(self, revision: str) -> None:
        path = SPEC_DIR / f"openapi-{revision}.json"
        if not path.exists():
            raise FileNotFoundError(
                f"Klaviyo's OpenAPI spec for {revision} is missing at {path}; set KLAVIYO_OPENAPI_DIR"
            )
        self.revision = revision
        self.document = json.loads(path.read_text())

    @cached_property
    def openapi(self) -> OpenAPI:
        # Klaviyo's spec fails strict spec validation (an ambiguous oneOf), so skip it.
        return OpenAPI.from_dict(self.document, config=Config(spec_validator_cls=None))

    def operation(self, method: str, path: str) -> Mapping[str, Any]:
        operation = self.document["paths"].get(path, {}).get(method.lower())
        if operation is None:
            raise ContractViolation(f"{method} {path} is not an operation of revision {self.revision}")
        return operation

    def parameters(self, operation: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        for parameter in operation.get("parameters", []):
            if "$ref" in parameter:
                parameter = self.document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
            yield parameter

    def allowed_filters(self, operation: Mapping[str, Any]) -> Mapping[str, set[str]]:
        for parameter in self.parameters(operation):
            if parameter["name"] == "filter" and parameter["in"] == "query":
                return {
                    field: set(re.findall(r"`([^`]+)`", ops))
                    for field, ops in _ALLOWED.findall(parameter.get("description", ""))
                }
        return {}

    def validate(self, request: requests.PreparedRequest) -> None:
        url = urlsplit(request.url)
        operation = self.operation(request.method, url.path)
        query = parse_qsl(url.query, keep_blank_values=True)
        known = {p["name"] for p in self.parameters(operation) if p["in"] == "query"}
        unknown = sorted({name for name, _ in query} - known)
        if unknown:
            raise ContractViolation(f"{request.method} {url.path}: unknown query parameters {unknown}")
        for name, value in query:
            if name == "filter":
                self.validate_filter(operation, value, url.path)
        try:
            self.openapi.validate_request(RequestsOpenAPIRequest(request))
        except Exception as error:  # openapi-core raises a family of validation errors
            raise ContractViolation(f"{request.method} {request.url}: {error}; {error.__cause__}") from error

    def validate_filter(self, operation: Mapping[str, Any], expression: str, path: str) -> None:
        allowed = self.allowed_filters(operation)
        for operator, field, value in parse_filter(expression):
            if operator not in allowed.get(field, set()):
                raise ContractViolation(f"{path}: filter {operator}({field},...) is not allowed; allowed: {allowed}")
            if field in TIME_FIELDS:
                try:
                    datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise ContractViolation(
                        f"{path}: {field} filter value {value!r} is not an ISO-8601 datetime"
                    ) from None


def parse_filter(expression: str) -> list[tuple[str, str, str]]:
    """`op(field,value),op(field,value)` (and `and(...)`) into (op, field, value) triples."""
    triples = []
    for term in _split_top_level(expression):
        match = re.fullmatch(r"([a-z-]+)\((.*)\)", term)
        if not match:
            raise ContractViolation(f"malformed filter term {term!r}")
        operator, inner = match.groups()
        if operator in ("and", "or", "not"):
            triples.extend(parse_filter(inner))
            continue
        arguments = _split_top_level(inner)
        if len(arguments) != 2:
            raise ContractViolation(f"filter term {term!r} needs a field and a value")
        triples.append((operator, arguments[0], arguments[1]))
    return triples


def _split_top_level(text: str) -> list[str]:
    parts, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        if char == "," and depth == 0 and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


class KlaviyoContract:
    """Validates requests of any revision; each revision's spec is loaded once, when first needed."""

    def __init__(self) -> None:
        self._revisions: dict[str, RevisionContract] = {}

    def revision(self, revision: str) -> RevisionContract:
        if revision not in self._revisions:
            self._revisions[revision] = RevisionContract(revision)
        return self._revisions[revision]

    def validate(self, request: requests.PreparedRequest) -> None:
        revision = request.headers.get("revision")
        if not revision:
            raise ContractViolation(f"{request.method} {request.url} has no revision header")
        if not request.headers.get("Authorization", "").startswith("Klaviyo-API-Key pk_"):
            raise ContractViolation(f"{request.method} {request.url} lacks the Klaviyo-API-Key authorization")
        if request.headers.get("Accept") != "application/vnd.api+json":
            raise ContractViolation(f"{request.method} {request.url} does not accept application/vnd.api+json")
        self.revision(revision).validate(request)
