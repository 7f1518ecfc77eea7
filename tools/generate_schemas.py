"""Write source_klaviyo/schemas/<stream>.json from Klaviyo's OpenAPI specs.

    python tools/generate_schemas.py ../shared/klaviyo-openapi

Each schema is the stream's resource as the specs define it: `id`, every
attribute the endpoint returns in the current revision and then in the
retired one (as nullable draft-07 types; some resources changed shape between
them), and one field per declared relationship. Nested objects whose members are all plain
values keep their properties; deeper structures (template definitions,
campaign send strategies) stay open objects. Run it when a stream is added or
the default revision changes, and commit the result.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from source_klaviyo.endpoints import REVISIONS, endpoint  # noqa: E402
from source_klaviyo.streams import STREAM_CLASSES  # noqa: E402

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "source_klaviyo" / "schemas"
# Attributes Klaviyo returns only when asked through additional-fields, which the stream does not ask for.
NOT_REQUESTED = {"templates": {"definition"}}
SCALARS = {"string", "integer", "number", "boolean"}


class OpenApi:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """Follow $ref and merge allOf into one schema (later members refine earlier ones)."""
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        if "allOf" in node:
            merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
            for member in node["allOf"]:
                merged = _merge(merged, self.resolve(member))
            return merged
        return node

    def resource(self, path: str) -> Mapping[str, Any]:
        get = self.document["paths"][path]["get"]
        content = next(iter(get["responses"]["200"]["content"].values()))
        collection = self.resolve(content["schema"])
        return self.resolve(collection["properties"]["data"]["items"])


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"]}
        for name, schema in extra["properties"].items():
            previous = base["properties"].get(name)
            merged["properties"][name] = _merge(previous, schema) if previous else schema
    return merged


def json_schema(api: OpenApi, node: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """A nullable draft-07 schema for one OpenAPI schema."""
    node = api.resolve(node)
    out: dict[str, Any] = {}
    if node.get("description") and depth == 0:
        out["description"] = node["description"]
    alternatives = node.get("oneOf") or node.get("anyOf")
    if alternatives:
        types = {api.resolve(option).get("type", "object") for option in alternatives}
        out["type"] = ["null", *sorted(types)]
        return out
    kind = node.get("type", "object")
    out["type"] = ["null", kind]
    if kind == "string" and node.get("format") == "date-time":
        out["format"] = "date-time"
    elif kind == "array":
        out["items"] = json_schema(api, node.get("items", {}), depth + 1)
    elif kind == "object":
        members = {name: api.resolve(member) for name, member in (node.get("properties") or {}).items()}
        if members and all(_plain(api, member) for member in members.values()):
            out["properties"] = {name: json_schema(api, member, depth + 1) for name, member in members.items()}
        out["additionalProperties"] = True
    return out


def _plain(api: OpenApi, node: Mapping[str, Any]) -> bool:
    """A scalar, or an array of scalars."""
    if node.get("type") == "array":
        return api.resolve(node.get("items", {})).get("type") in SCALARS
    return node.get("type") in SCALARS


def stream_schema(apis: Mapping[str, OpenApi], stream_class: type) -> dict[str, Any]:
    skipped = NOT_REQUESTED.get(stream_class.name, set())
    properties: dict[str, Any] = {"id": {"type": "string", "description": "Klaviyo's id of the resource."}}
    resources = {}
    for revision, api in apis.items():
        facts = endpoint(revision, stream_class.endpoint_name)
        if facts is None:
            continue
        resources[revision] = resource = api.resource("/" + facts.path(revision))
        for name, attribute in api.resolve(resource["properties"]["attributes"])["properties"].items():
            if name not in skipped and name not in properties:
                properties[name] = json_schema(api, attribute)
    api, resource = apis[REVISIONS[0]], resources[REVISIONS[0]]
    relationships = api.resolve(resource["properties"].get("relationships", {"properties": {}}))["properties"]
    for relationship, field in stream_class.relationships.items():
        linkage = api.resolve(api.resolve(relationships[relationship])["properties"]["data"])
        many = linkage.get("type") == "array"
        properties[field] = (
            {
                "type": ["null", "array"],
                "items": {"type": "string"},
                "description": f"Ids of the related {relationship}.",
            }
            if many
            else {"type": ["null", "string"], "description": f"Id of the related {relationship}."}
        )
    for field, (relationship, attribute) in getattr(stream_class, "included_attributes", {}).items():
        properties[field] = {
            "type": ["null", "string"],
            "description": f"The {attribute} of the related {relationship}.",
        }
    for field, relationship in getattr(stream_class, "attributed", {}).items():
        properties[field] = {
            "type": ["null", "string"],
            "description": f"Id of the {relationship} Klaviyo attributes the event to (revision 2026-07-15 on).",
        }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": True,
        "properties": properties,
    }


def main(spec_dir: str) -> None:
    apis = {
        revision: OpenApi(json.loads((Path(spec_dir) / f"openapi-{revision}.json").read_text()))
        for revision in REVISIONS
    }
    SCHEMA_DIR.mkdir(exist_ok=True)
    for stream_class in (cls for cls in STREAM_CLASSES if cls.generated_schema):
        target = SCHEMA_DIR / f"{stream_class.name}.json"
        target.write_text(json.dumps(stream_schema(apis, stream_class), indent=2) + "\n")
        print(f"wrote {target.relative_to(SCHEMA_DIR.parents[1])}")


if __name__ == "__main__":
    main(sys.argv[1])
