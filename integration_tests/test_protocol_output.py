"""The CLI writes records a page at a time (protocol.py): its output must be the CDK's, byte for byte.

Each line the CLI prints is compared with what the CDK's own serialisation makes of the
same message, and the whole read with an in-process read through the CDK's stock
entrypoint (a message per record): the same records, states and record counts.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import AirbyteMessageSerializer, ConfiguredAirbyteCatalogSerializer, Type
from airbyte_cdk.test.entrypoint_wrapper import read

from integration_tests.connector_cli import CONNECTOR, configured_catalog, discovered_catalog
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY
from source_klaviyo.source import SourceKlaviyo

# Read a page at a time (events, profiles), a parent at a time (list_memberships) and per record (lists).
STREAMS = ["events", "profiles", "list_memberships", "lists"]


def without_emitted_at(line: str) -> str:
    message = json.loads(line)
    message["record"].pop("emitted_at")
    return json.dumps(message, sort_keys=True)


def test_every_line_the_cli_prints_is_the_cdks_serialisation_and_the_read_matches_the_cdks(klaviyo_sim, tmp_path):
    config = {"api_key": FULL_ACCESS_KEY, "api_url": klaviyo_sim.url}
    catalog = configured_catalog(discovered_catalog(tmp_path, config), STREAMS)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    command = [
        CONNECTOR,
        "read",
        "--config",
        str(tmp_path / "config.json"),
        "--catalog",
        str(tmp_path / "catalog.json"),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout[-2000:]
    lines = finished.stdout.splitlines()
    assert all(
        line == AirbyteEntrypoint.airbyte_message_to_string(AirbyteMessageSerializer.load(json.loads(line)))
        for line in lines
    )

    cdk = read(SourceKlaviyo(), config, ConfiguredAirbyteCatalogSerializer.load(catalog))
    assert not cdk.errors
    cdk_lines = [AirbyteEntrypoint.airbyte_message_to_string(message) for message in cdk.records]
    cli_records = [line for line in lines if line.startswith('{"type":"RECORD"')]
    assert Counter(map(without_emitted_at, cli_records)) == Counter(map(without_emitted_at, cdk_lines))
    per_stream = Counter(json.loads(line)["record"]["stream"] for line in cli_records)
    assert all(per_stream[stream] > 1 for stream in STREAMS), per_stream

    states = [json.loads(line)["state"] for line in lines if line.startswith('{"type":"STATE"')]
    counted = Counter()
    for state in states:
        counted[state["stream"]["stream_descriptor"]["name"]] += state["sourceStats"]["recordCount"]
    assert counted == per_stream, "each STATE counts the records since the stream's last STATE"
    final = {state["stream"]["stream_descriptor"]["name"]: state["stream"]["stream_state"] for state in states}
    cdk_final = {
        message.state.stream.stream_descriptor.name: AirbyteMessageSerializer.dump(message)["state"]["stream"][
            "stream_state"
        ]
        for message in cdk.state_messages
        if message.type == Type.STATE
    }
    assert final == cdk_final
