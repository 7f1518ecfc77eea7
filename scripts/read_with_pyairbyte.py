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
from airbyte.exceptions import AirbyteSubprocessFailedError, PyAirbyteError

STOPPED_BY_SIGTERM = 143  # the connector's exit status after its graceful stop on SIGTERM (128 + 15)


def ignore_stopped_spec_and_discover(unraisable: sys.UnraisableHookArgs) -> None:
    """PyAirbyte stops `spec` and `discover` with SIGTERM as soon as it has their answer, then takes any exit status
    but 0 and -15 (killed by the signal) for a failure, in a generator's clean-up, where Python can only print it
    ("Exception ignored ... Exit Code: 143") and goes on. The connector handles SIGTERM and exits 143, so every read
    printed two such tracebacks where nothing failed: they are left out, anything else is printed as usual."""
    error = unraisable.exc_value
    if not (isinstance(error, AirbyteSubprocessFailedError) and error.exit_code == STOPPED_BY_SIGTERM):
        sys.__unraisablehook__(unraisable)


def main(config_file: str, connector: str, database: str, work_folder: str) -> None:
    sys.unraisablehook = ignore_stopped_spec_and_discover
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
