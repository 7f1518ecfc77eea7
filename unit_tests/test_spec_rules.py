"""The spec renders in the Airbyte UI: the spec rules of Airbyte's connector acceptance tests.

The UI draws one form field per property from its single type; it cannot show a field of several
types, an object without properties or an array of mixed items, and it picks a `oneOf` variant by one
`const` discriminator. Each rule below walks the whole connectionSpecification.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SPEC = json.loads((Path(__file__).parents[1] / "source_klaviyo" / "spec.json").read_text())["connectionSpecification"]
# The settings that change how the connector reads, not what: the UI keeps them out of sight until asked for.
ADVANCED = {
    "api_url",
    "request_timeout_seconds",
    "retry_budget_seconds",
    "num_workers",
    "revision",
    "legacy_v1_campaigns",
}
SECRET_WORDS = ("key", "token", "secret", "password", "credential", "jwt", "certificate")
FORBIDDEN = ("not", "anyOf", "allOf", "patternProperties", "prefixItems", "if", "then", "else")


def schemas(node: Any = SPEC, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema in the spec with its path: the root, each property, each array's items, each oneOf variant."""
    yield path or "/", node
    for name, child in node.get("properties", {}).items():
        yield from schemas(child, f"{path}/properties/{name}")
    if isinstance(node.get("items"), dict):
        yield from schemas(node["items"], f"{path}/items")
    for index, variant in enumerate(node.get("oneOf", [])):
        yield from schemas(variant, f"{path}/oneOf/{index}")


def properties() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, schema in schemas():
        for name, child in schema.get("properties", {}).items():
            yield f"{path}/properties/{name}".replace("//", "/"), name, child


def test_each_property_has_a_single_type_or_one_plus_null():
    for path, _, prop in properties():
        kind = prop.get("type")
        if isinstance(kind, list):
            assert len(kind) in (1, 2) and (len(kind) == 1 or kind[1] == "null"), f"{path}: {kind}"
        else:
            assert isinstance(kind, str), f"{path} has no type"


def test_every_object_has_properties():
    for path, schema in schemas():
        if schema.get("type") == "object" and path != "/" and "oneOf" not in schema:
            assert schema.get("properties"), f"{path} is an object without properties"


def test_every_array_has_one_item_type():
    for path, schema in schemas():
        if schema.get("type") == "array":
            items = schema.get("items")
            assert isinstance(items, dict), f"{path} lists several item types"
            assert items.get("type") in ("object", "string", "number", "integer") or "enum" in items, path


def test_a_one_of_is_made_of_objects_with_exactly_one_common_const_discriminator():
    for path, schema in schemas():
        if "oneOf" not in schema:
            continue
        assert schema.get("type") == "object", path
        variants = schema["oneOf"]
        assert all("properties" in variant for variant in variants), path
        common = set.intersection(*(set(variant["properties"]) for variant in variants))
        constants = [name for name in common if all("const" in v["properties"][name] for v in variants)]
        assert len(constants) == 1, f"{path}: {constants}"


def test_no_schema_uses_keywords_the_form_cannot_draw():
    for path, schema in schemas():
        assert not set(FORBIDDEN) & set(schema), f"{path}: {set(FORBIDDEN) & set(schema)}"


@pytest.mark.parametrize("rule", ["marked", "only_strings"])
def test_secret_named_fields_are_marked_airbyte_secret(rule):
    for path, name, prop in properties():
        secret_name = any(re.search(rf"(^|_){word}s?($|_)", name) for word in SECRET_WORDS)
        if rule == "marked" and secret_name and prop.get("type") in ("string", "integer", "number"):
            assert prop.get("airbyte_secret") is True, f"{path} looks secret and is not marked"
        if rule == "only_strings" and prop.get("airbyte_secret"):
            assert prop.get("type") == "string", f"{path} is marked secret but cannot hold one"
    assert SPEC["properties"]["api_key"]["airbyte_secret"] is True


def test_order_is_unique_within_each_group_and_each_nested_object():
    """The UI orders a group's fields, and a nested object's, by `order`; a duplicate has no place."""
    for path, schema in schemas():
        levels: dict[str, list[int]] = {}
        for prop in schema.get("properties", {}).values():
            if "order" in prop:
                levels.setdefault(prop.get("group", ""), []).append(prop["order"])
        for group, orders in levels.items():
            assert len(orders) == len(set(orders)), f"{path} {group}: {orders}"
    assert all("order" in prop for prop in SPEC["properties"].values()), "every top-level field has its place"


def test_every_top_level_field_sits_in_one_declared_group_and_no_nested_field_names_one():
    """The UI draws one card per group, in the order of `groups`; it allows `group` on top-level fields only."""
    declared = [group["id"] for group in SPEC["groups"]]
    assert declared == ["connection", "what_to_read", "reports", "advanced"]
    assert all(group.get("title") for group in SPEC["groups"]), "each card says what it holds"
    for name, prop in SPEC["properties"].items():
        assert prop.get("group") in declared, f"{name} is in no declared group"
    assert {prop["group"] for prop in SPEC["properties"].values()} == set(declared), "no group is empty"
    nested = [
        path for path, schema in schemas() if path != "/" and "group" in schema and path.count("/properties/") > 1
    ]
    assert not nested, nested


def test_advanced_settings_start_collapsed_and_every_other_field_shows():
    """The UI folds a group's optional fields into its "Optional fields" section unless they say `always_show`:
    the advanced settings stay folded there (still editable; `airbyte_hidden` would take them out of the UI)."""
    advanced = {name for name, prop in SPEC["properties"].items() if prop["group"] == "advanced"}
    assert advanced >= ADVANCED
    for name, prop in SPEC["properties"].items():
        assert not prop.get("airbyte_hidden"), f"{name} can be set in the UI"
        if name in advanced:
            assert name not in SPEC["required"] and not prop.get("always_show"), f"{name} starts folded"
        else:
            assert name in SPEC["required"] or prop.get("always_show") is True, f"{name} shows from the start"


def test_date_fields_carry_a_pattern_and_a_pattern_descriptor():
    dates = [(path, prop) for path, _, prop in properties() if prop.get("format") in ("date", "date-time")]
    assert len(dates) == 3, "start_date and the custom dates' start and end"
    for path, prop in dates:
        assert prop.get("pattern") and prop.get("pattern_descriptor"), path


def test_additional_properties_are_never_closed():
    """Closing an object would make every config an older version wrote with a removed key invalid."""
    for path, schema in schemas():
        assert schema.get("additionalProperties", True) is True, path


def test_the_metric_aggregates_query_is_a_multiline_json_text_field_whose_examples_show_both_shapes():
    field = SPEC["properties"]["metric_aggregates"]
    assert field["type"] == "string" and field["multiline"] is True and field["always_show"] is True
    shapes = [type(json.loads(example)) for example in field["examples"]]
    assert shapes == [dict, list], "one query, and a list of named queries"
