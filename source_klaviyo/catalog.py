"""What discover offers and what a read's catalog may ask for.

discover offers every stream the config can run (a stream that needs a setting
appears once it is set; campaign and flow reports once the account has a
conversion metric), so selecting every discovered stream, as the Airbyte UI does,
always syncs. A read's catalog may select only such streams, and the profiles
stream by one of its two cursors; a stream of the official connector's catalog
is named with the streams that hold its records here.
"""

from __future__ import annotations

from collections.abc import Mapping

from airbyte_cdk.models import AirbyteCatalog, ConfiguredAirbyteStream, SyncMode

from source_klaviyo.account import Account
from source_klaviyo.config import KlaviyoConfig
from source_klaviyo.errors import config_error
from source_klaviyo.official import OFFICIAL_STREAMS
from source_klaviyo.streams import STREAM_CLASSES
from source_klaviyo.streams.profiles import PROFILE_CURSORS, Profiles


def offered(catalog: AirbyteCatalog, account: Account) -> AirbyteCatalog:
    """The CDK's catalog of the config's streams, less the reports the account cannot count conversions for; per-
    parent streams say they resume an interrupted full refresh (the CDK knows only that cursor streams do)."""
    offers = {cls.name for cls in STREAM_CLASSES if account.offers(cls)}
    resumable = {cls.name for cls in STREAM_CLASSES if cls.resumes_full_refresh}
    catalog.streams = [stream for stream in catalog.streams if stream.name in offers]
    for stream in catalog.streams:
        stream.is_resumable = stream.is_resumable or stream.name in resumable
    return catalog


def checked_catalog(configured: Mapping[str, ConfiguredAirbyteStream], config: KlaviyoConfig) -> str:
    """The profiles cursor the catalog chose, once the catalog asks only for what can be read."""
    unknown = sorted(set(configured) - {stream_class.name for stream_class in STREAM_CLASSES})
    if unknown:
        known = ", ".join(stream_class.name for stream_class in STREAM_CLASSES)
        raise config_error(
            f"The catalog selects streams this connector does not have: {', '.join(map(_named, unknown))}. "
            f"Refresh the source schema or deselect them (streams: {known})."
        )
    profiles = configured.get(Profiles.name)
    cursor = (
        (profiles.cursor_field or ["created"])
        if profiles and profiles.sync_mode == SyncMode.incremental
        else ["created"]
    )
    if cursor not in ([name] for name in PROFILE_CURSORS):
        raise config_error(f"The profiles stream can use `created` or `updated` as its cursor, not {cursor}.")
    for stream_class in STREAM_CLASSES:
        missing = stream_class.name in configured and stream_class.missing_setting(config)
        if missing:
            raise config_error(
                f"The catalog selects the {stream_class.name} stream, which needs {missing} in the config: "
                "set it, or refresh the source schema and deselect the stream."
            )
    return cursor[0]


def _named(stream: str) -> str:
    official = OFFICIAL_STREAMS.get(stream)
    return f"{stream} (the official connector's; here {' and '.join(official.ours)})" if official else stream
