"""Every schema property exists in Klaviyo's resource, and every attribute Klaviyo returns is in the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from klaviyo_spec.contract import load_spec
from source_klaviyo.endpoints import endpoint
from source_klaviyo.streams import STREAM_CLASSES
from source_klaviyo.streams.reports import REPORT_CLASSES

SCHEMAS = Path(__file__).parents[1] / "source_klaviyo" / "schemas"
# Attributes returned only through additional-fields, which the connector does not request.
NOT_REQUESTED = {"templates": {"definition"}}


def attributes_and_relationships(revision, stream_class):
    """Attribute names and relationship names of the endpoint's resource, with $ref and allOf resolved."""
    document = load_spec(revision)

    def resolve(node):
        while "$ref" in node:
            target = document
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        if "allOf" in node:
            merged = {"properties": {}}
            for member in node["allOf"]:
                member = resolve(member)
                for key, value in member.get("properties", {}).items():
                    merged["properties"].setdefault(key, {"allOf": []})["allOf"].append(value)
            return merged
        return node

    facts = endpoint(revision, stream_class.endpoint_name)
    if facts is None:  # the revision has no such endpoint
        return set(), set()
    operation = document["paths"]["/" + facts.path(revision)]["get"]
    content = next(iter(operation["responses"]["200"]["content"].values()))
    item = resolve(resolve(resolve(content["schema"])["properties"]["data"])["items"])
    attributes = resolve(item["properties"]["attributes"]).get("properties", {})
    relationships = resolve(item["properties"].get("relationships", {"properties": {}})).get("properties", {})
    return set(attributes), set(relationships)


GENERATED = [cls for cls in STREAM_CLASSES if cls.generated_schema]


@pytest.mark.parametrize("stream_class", GENERATED, ids=lambda cls: cls.name)
def test_every_schema_property_exists_in_the_klaviyo_resource(stream_class):
    schema = json.loads((SCHEMAS / f"{stream_class.name}.json").read_text())
    Draft7Validator.check_schema(schema)
    attributes, relationships = attributes_and_relationships("2026-07-15", stream_class)
    attributes |= attributes_and_relationships("2023-10-15", stream_class)[0]
    relationship_fields = set(stream_class.relationships.values())
    included = getattr(stream_class, "included_attributes", {})
    attributed = set(getattr(stream_class, "attributed", {}))

    assert set(stream_class.relationships) <= relationships
    assert set(schema["properties"]) - {"id"} - relationship_fields - set(included) - attributed <= attributes
    assert set(schema["properties"]) >= relationship_fields | set(included) | attributed
    for relationship, attribute in included.values():
        related = next(cls for cls in STREAM_CLASSES if cls.endpoint_name == relationship + "s")
        assert relationship in relationships and attribute in attributes_and_relationships("2026-07-15", related)[0]


@pytest.mark.parametrize("revision", ["2026-07-15", "2023-10-15"])
@pytest.mark.parametrize("stream_class", GENERATED, ids=lambda cls: cls.name)
def test_every_attribute_klaviyo_returns_has_a_schema_property(stream_class, revision):
    schema = json.loads((SCHEMAS / f"{stream_class.name}.json").read_text())
    attributes, _ = attributes_and_relationships(revision, stream_class)
    missing = attributes - NOT_REQUESTED.get(stream_class.name, set()) - set(schema["properties"])
    assert not missing, f"{stream_class.name} on {revision} returns {missing} that the schema does not declare"


@pytest.mark.parametrize(
    "stream_class",
    [cls for cls in STREAM_CLASSES if not cls.generated_schema and cls not in REPORT_CLASSES],
    ids=lambda cls: cls.name,
)
def test_hand_written_schemas_are_valid_draft_7_and_hold_the_primary_key(stream_class):
    schema = json.loads((SCHEMAS / f"{stream_class.name}.json").read_text())
    Draft7Validator.check_schema(schema)
    keys = [stream_class.primary_key] if isinstance(stream_class.primary_key, str) else stream_class.primary_key
    assert all(schema["properties"][key]["type"] == "string" for key in keys)
