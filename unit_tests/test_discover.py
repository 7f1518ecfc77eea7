"""spec and discover: every stream with its draft-07 schema, primary key, cursor and sync modes."""

from __future__ import annotations

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import discover
from jsonschema import Draft7Validator

from source_klaviyo import SourceKlaviyo
from unit_tests.klaviyo_mock import config

EXPECTED = {
    "campaigns_v1": None,
    "campaigns_email": None,
    "campaigns_sms": None,
    "templates": "updated",
    "profiles": "created",
    "events": "datetime",
    "events_custom_dates": None,
    "metrics": None,
    "lists": "updated",
    "segments": "updated",
    "flows": None,
    "metric_aggregates": None,
}


def test_discover_lists_every_stream_with_schema_key_cursor_and_modes(api):
    output = discover(SourceKlaviyo(config()), config())
    streams = {stream.name: stream for stream in output.catalog.catalog.streams}

    assert set(streams) == set(EXPECTED)
    assert api.call_count == 0, "discover needs no request"
    for name, cursor in EXPECTED.items():
        stream = streams[name]
        Draft7Validator.check_schema(stream.json_schema)
        assert stream.json_schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert stream.source_defined_primary_key == [["id"]]
        assert stream.json_schema["properties"]["id"]["type"] == "string"
        if cursor:
            assert stream.supported_sync_modes == [SyncMode.full_refresh, SyncMode.incremental]
            assert stream.default_cursor_field == [cursor]
            # Profiles let the user pick created or updated; every other cursor is the stream's own.
            assert stream.source_defined_cursor is (name != "profiles")
            assert cursor in stream.json_schema["properties"]
        else:
            assert stream.supported_sync_modes == [SyncMode.full_refresh]


def test_spec_is_served_from_the_package():
    spec = SourceKlaviyo().spec(logger=None)
    properties = spec.connectionSpecification["properties"]
    assert properties["api_key"]["airbyte_secret"] is True
    assert properties["revision"]["enum"] == ["2026-07-15", "2023-10-15"]
