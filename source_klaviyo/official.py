"""What this connector knows of the official Airbyte Klaviyo connector (airbytehq/airbyte, source-klaviyo 2.x and 3.x),
so that one of its connections can move here without reading history again: its streams, the cursor each keeps its
state by, and the streams that hold their records here. Facts only, from its manifest, spec and changelog;
incoming_state.py takes its states over with them, catalog.py names them in its errors, and
docs/migrating-from-official.md gives the sources and the differences users see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class OfficialStream:
    """One official stream: `cursor`, the field its state holds; `ours`, the streams that hold its records here;
    `resumes`, the one of them its state resumes and that stream's cursor. None: ours read in full on every sync,
    so its state is not needed."""

    cursor: str
    ours: tuple[str, ...]
    resumes: tuple[str, str] | None = None


OFFICIAL_STREAMS: Mapping[str, OfficialStream] = {
    # Ours are per channel, read in full (campaigns change after they are sent, and are few); the messages that
    # campaigns_detailed embeds are a stream of their own here.
    "campaigns": OfficialStream("updated_at", ("campaigns_email", "campaigns_sms")),
    "campaigns_detailed": OfficialStream("updated_at", ("campaigns_email", "campaigns_sms", "campaign_messages")),
    "email_templates": OfficialStream("updated", ("templates",), ("templates", "updated")),
    # Ours carries the metric name and the attributions events_detailed added, so both official streams are ours.
    "events": OfficialStream("datetime", ("events",), ("events", "datetime")),
    "events_detailed": OfficialStream("datetime", ("events",), ("events", "datetime")),
    "flows": OfficialStream("updated", ("flows",)),
    # The official cursor is the profile's `updated`, ours the suppression's `timestamp`: suppressing a profile
    # updates it, so every suppression before the official value was read there.
    "global_exclusions": OfficialStream("updated", ("global_exclusions",), ("global_exclusions", "timestamp")),
    "lists": OfficialStream("updated", ("lists",), ("lists", "updated")),
    "lists_detailed": OfficialStream("updated", ("lists",), ("lists", "updated")),
    "metrics": OfficialStream("updated", ("metrics",)),
    "profiles": OfficialStream("updated", ("profiles",), ("profiles", "updated")),
    # The official report cursor is where its last request window ended, as ours (`start` for values reports).
    "campaign_values_reports": OfficialStream(
        "date", ("campaign_values_reports",), ("campaign_values_reports", "start")
    ),
    "flow_series_reports": OfficialStream("date", ("flow_series_reports",), ("flow_series_reports", "date")),
}

# How the official connector writes its cursor values (`2026-05-31T00:00:00+0000`) and what else it reads
# (its manifest's cursor_datetime_formats); ISO-8601 with a colon in the offset is read as this connector's own.
CURSOR_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z")
