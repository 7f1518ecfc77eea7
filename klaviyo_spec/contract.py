"""Klaviyo's OpenAPI spec of a revision, compiled into fast request checks and response validation.

The simulator checks every request with `RequestContract` (microseconds per
request, so it never slows a benchmark) and the tests hold requests and
responses to the spec with it and `ResponseContract`. What is checked comes
from the spec itself: the operation's query parameters (name, type, enum,
minimum, maximum, required), the fields and operators its `filter`
description allows, and the request body schema. Paths match the spec's
templates (`/api/flows/{id}/flow-actions`), so a request for one flow's
actions finds its operation, scopes, rate limits and parameters.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_DIR = Path(os.environ.get("KLAVIYO_SIM_OPENAPI_DIR", Path(__file__).parent / "openapi"))
_ALLOWED = re.compile(r"`([^`]+)`\s*:\s*((?:`[^`]+`(?:,\s*)?)+)")
_COMPARISONS = {"greater-than", "greater-or-equal", "less-than", "less-or-equal"}
_PREDICTIVE = re.compile(
    r"predictive_analytics` parameter in your API request:<br>Burst: `(\d+)/s`<br>Steady: `(\d+)/m`"
)
_CHANNEL = re.compile(r"equals\(messages\.channel,'([a-z_]+)'\)")


@dataclass(frozen=True)
class Violation:
    """A request Klaviyo would refuse, with the parts of Klaviyo's error body."""

    detail: str
    parameter: str | None = None
    status: int = 400

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "id": "00000000-0000-4000-8000-000000000000",
            "status": self.status,
            "code": "invalid" if self.status == 400 else "not_found",
            "title": "Invalid input." if self.status == 400 else "Not found.",
            "detail": self.detail,
        }
        if self.parameter:
            error["source"] = {"parameter": self.parameter}
        return {"errors": [error]}


@cache
def load_spec(revision: str) -> Mapping[str, Any]:
    path = SPEC_DIR / f"openapi-{revision}.json"
    if not path.exists():
        raise FileNotFoundError(f"no OpenAPI spec for revision {revision} at {path}")
    return json.loads(path.read_text())


def parse_filter(expression: str) -> list[tuple[str, str, str]]:
    """`op(field,value),op(field,value)` (and nested `and(...)`) into (op, field, value) triples."""
    triples = []
    for term in split_top_level(expression):
        match = re.fullmatch(r"([a-z-]+)\((.*)\)", term.strip())
        if not match:
            raise ValueError(f"malformed filter term {term!r}")
        operator, inner = match.groups()
        if operator in ("and", "or", "not"):
            triples.extend(parse_filter(inner))
            continue
        arguments = split_top_level(inner)
        if len(arguments) != 2:
            raise ValueError(f"filter term {term!r} needs a field and a value")
        triples.append((operator, arguments[0].strip(), arguments[1].strip()))
    return triples


def split_top_level(text: str) -> list[str]:
    """Split on commas outside quotes (single or double, as Klaviyo takes strings), parentheses and brackets."""
    parts, depth, quote, start = [], 0, "", 0
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def parse_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Operation:
    """One operation of one revision, compiled for checking requests."""

    def __init__(self, document: Mapping[str, Any], method: str, path: str, operation: Mapping[str, Any]) -> None:
        self.method, self.path = method.upper(), path  # path as the spec writes it, maybe templated
        self.operation_id = operation["operationId"]
        self.scopes = tuple(operation.get("x-klaviyo-scopes", ()))
        limits = operation.get("x-klaviyo-ratelimit", {})
        self.burst = int(limits.get("burst", "0/s").split("/")[0])
        self.steady = int(limits.get("steady", "0/m").split("/")[0])
        self.daily = int(limits.get("daily", "0/d").split("/")[0])  # the Reporting API's requests a day
        self.description = operation.get("description", "")
        # The tier the description gives when additional-fields[profile]=predictive_analytics is asked.
        predictive = _PREDICTIVE.search(self.description)
        self.predictive_limits = (int(predictive[1]), int(predictive[2])) if predictive else None
        # Channels the description names in its required campaign filter (email, sms, mobile_push).
        self.channels = tuple(dict.fromkeys(_CHANNEL.findall(self.description)))
        self.query: dict[str, Mapping[str, Any]] = {}
        self.required: set[str] = set()
        self.filters: dict[str, set[str]] = {}
        for parameter in operation.get("parameters", []):
            if "$ref" in parameter:
                parameter = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
            if parameter["in"] != "query":
                continue
            self.query[parameter["name"]] = parameter.get("schema", {})
            if parameter.get("required"):
                self.required.add(parameter["name"])
            if parameter["name"] == "filter":
                self.filters = {
                    field: set(re.findall(r"`([^`]+)`", ops))
                    for field, ops in _ALLOWED.findall(parameter.get("description", ""))
                }
        self.pageable = "page[cursor]" in self.query  # without it the revision serves a single page
        self.body_validator: OAS30Validator | None = None
        self.body_content_type: str | None = None  # the one media type the spec lists for the body
        if "requestBody" in operation:
            content_type = self.body_content_type = next(iter(operation["requestBody"]["content"]))
            revision = document["info"]["version"]
            self.body_validator = _validator(
                revision, ["paths", path, method, "requestBody", "content", content_type, "schema"]
            )

    def check(self, query: Sequence[tuple[str, str]], body: Any = None) -> Violation | None:
        names = [name for name, _ in query]
        for name in names:
            if name not in self.query:
                return Violation(f"'{name}' is not a valid query parameter for {self.path}.", name)
        for name in self.required - set(names):
            return Violation(f"'{name}' is a required parameter.", name)
        if len(set(names)) != len(names):
            return Violation("A query parameter may be given only once.", next(n for n in names if names.count(n) > 1))
        for name, value in query:
            problem = self._check_value(name, value)
            if problem:
                return Violation(problem, name)
        if self.body_validator is not None:
            error = next(iter(self.body_validator.iter_errors(body)), None)
            if error is not None:
                where = "/".join(str(part) for part in error.absolute_path)
                return Violation(f"Invalid request body at '/{where}': {error.message}", None)
        return None

    def _check_value(self, name: str, value: str) -> str | None:
        schema = self.query[name]
        kind = schema.get("type")
        if name == "filter":
            return self.check_filter(value)
        if kind == "integer":
            try:
                number = int(value)
            except ValueError:
                return f"'{value}' is not an integer."
            if "minimum" in schema and number < schema["minimum"]:
                return f"{number} is below the minimum of {schema['minimum']}."
            if "maximum" in schema and number > schema["maximum"]:
                return f"{number} is above the maximum of {schema['maximum']}."
        elif kind == "array":
            allowed = schema.get("items", {}).get("enum")
            for item in value.split(","):
                if allowed and item not in allowed:
                    return f"'{item}' is not one of {allowed}."
        elif schema.get("enum") and value not in schema["enum"]:
            return f"'{value}' is not a valid choice; choose from {schema['enum']}."
        return None

    def check_filter(self, expression: str) -> str | None:
        try:
            triples = parse_filter(expression)
        except ValueError as error:
            return str(error)
        for operator, field, value in triples:
            allowed = self.filters.get(field)
            if allowed is None:
                return f"'{field}' is not a valid field for filtering; valid fields are {sorted(self.filters)}."
            if operator not in allowed:
                return f"'{operator}' is not a valid operator for '{field}'; valid operators are {sorted(allowed)}."
            if operator in _COMPARISONS and not value.lstrip("-").isdigit():
                try:
                    parse_datetime(value)
                except ValueError:
                    return f"'{value}' is not a valid ISO-8601 datetime for '{field}'."
        return None


class RequestContract:
    """Every operation of one revision, by (method, path): exact paths first, then the spec's templates."""

    def __init__(self, revision: str) -> None:
        self.revision = revision
        self.document = load_spec(revision)
        self.operations = {
            (method.upper(), path): Operation(self.document, method, path, operation)
            for path, item in self.document["paths"].items()
            for method, operation in item.items()
        }
        # A template's variables match one path segment each: `/api/flows/{id}/flow-actions`.
        self.templates = [
            (method, re.compile("".join(_segment(part) for part in re.split(r"(\{[^}/]+\})", path))), operation)
            for (method, path), operation in self.operations.items()
            if "{" in path
        ]

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation a request path is for (exact or templated), or None."""
        found = self.match(method, path)
        return found[0] if found else None

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """(operation, path variables) for a request path, e.g. ({id: "XyZ"}) for /api/flows/XyZ/flow-actions."""
        method = method.upper()
        operation = self.operations.get((method, path))
        if operation is not None and "{" not in path:
            return operation, {}
        for template_method, pattern, operation in self.templates:
            if template_method == method:
                found = pattern.fullmatch(path)
                if found:
                    return operation, found.groupdict()
        return None


def _segment(part: str) -> str:
    if part.startswith("{") and part.endswith("}"):
        return f"(?P<{part[1:-1]}>[^/]+)"
    return re.escape(part)


@cache
def request_contract(revision: str) -> RequestContract:
    return RequestContract(revision)


def _relaxed(node: Any) -> Any:
    """Klaviyo's spec has oneOf alternatives that overlap (a send option valid for email and SMS alike),
    so a correct body can match several; validate them as anyOf."""
    if isinstance(node, dict):
        return {("anyOf" if key == "oneOf" else key): _relaxed(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_relaxed(value) for value in node]
    return node


@cache
def _registry(revision: str) -> Registry:
    document = _relaxed(load_spec(revision))
    return Registry().with_resource(
        f"urn:klaviyo:{revision}", Resource.from_contents(document, default_specification=DRAFT4)
    )


def _validator(revision: str, location: Sequence[str]) -> OAS30Validator:
    """A validator for the schema at `location` in the spec, its $refs resolved within the spec."""
    pointer = "/".join(part.replace("~", "~0").replace("/", "~1") for part in location)
    return OAS30Validator({"$ref": f"urn:klaviyo:{revision}#/{pointer}"}, registry=_registry(revision))


class ResponseContract:
    """Validates a 200 response body against the operation's response schema."""

    def __init__(self, revision: str) -> None:
        self.revision = revision
        self.document = load_spec(revision)

    def errors(self, method: str, path: str, body: Any) -> list[str]:
        operation = self.document["paths"][path][method.lower()]
        content_type = next(iter(operation["responses"]["200"]["content"]))
        location = ["paths", path, method.lower(), "responses", "200", "content", content_type, "schema"]
        validator = _validator(self.revision, location)
        return [f"/{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(body)]
