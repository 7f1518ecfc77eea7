"""Read the connector through PyAirbyte into its default DuckDB cache; print what was read as JSON.

    <pyairbyte python> pyairbyte_read.py CONFIG_JSON EXECUTABLE STREAM [STREAM ...]

Runs in PyAirbyte's own environment (PyAirbyte brings dependencies ours do not need); the connector is
the local `source-klaviyo` executable, so nothing is fetched from Airbyte's registry.
"""

from __future__ import annotations

import json
import sys

import airbyte as ab


def main(config_json: str, executable: str, *streams: str) -> None:
    source = ab.get_source(
        "source-klaviyo", config=json.loads(config_json), local_executable=executable, streams=list(streams)
    )
    result = source.read()  # the default cache: DuckDB under ./.cache
    cache = ab.get_default_cache()
    print(
        json.dumps(
            {
                "processed": result.processed_records,
                "cached": {stream: len(cache[stream].to_pandas()) for stream in streams},
                "ids": {stream: sorted(cache[stream].to_pandas()["id"]) for stream in streams},
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
