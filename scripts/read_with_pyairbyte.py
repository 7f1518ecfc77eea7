"""Read every stream the connector offers through PyAirbyte into a DuckDB file; runs in PyAirbyte's environment.

    .venv-pyairbyte/bin/python scripts/read_with_pyairbyte.py CONFIG_FILE CONNECTOR DATABASE WORK_FOLDER

PyAirbyte's DuckDB cache at DATABASE holds the records and PyAirbyte's state, so a read into a file that an
earlier read filled continues from that state (incrementally, for the streams the connector reads so). PyAirbyte
shows its own progress. The connector is the local executable CONNECTOR, so nothing comes from Airbyte's registry;
WORK_FOLDER takes PyAirbyte's temporary files. scripts/demo.py runs this, then answers its questions from the file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import airbyte as ab
from airbyte.caches import DuckDBCache
from airbyte.exceptions import PyAirbyteError


def main(config_file: str, connector: str, database: str, work_folder: str) -> None:
    config = json.loads(Path(config_file).read_text())
    source = ab.get_source("source-klaviyo", config=config, local_executable=connector)
    source.select_all_streams()  # every stream discover offers, as a new Airbyte connection selects
    began = time.monotonic()
    try:
        result = source.read(cache=DuckDBCache(db_path=database, cache_dir=work_folder))
    except PyAirbyteError as error:
        sys.exit(f"!! PyAirbyte's read failed: {error}")
    print(f"== PyAirbyte read {result.processed_records:,} records in {time.monotonic() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
