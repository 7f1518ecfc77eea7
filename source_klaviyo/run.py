"""Console entry point: `source-klaviyo spec|check|discover|read ...`: tunes the process, handles SIGTERM, launches
the command, and turns an error the user can fix into one TRACE without a traceback."""

from __future__ import annotations

import sys

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo import shutdown
from source_klaviyo.errors import trace_error
from source_klaviyo.protocol import launch
from source_klaviyo.source import SourceKlaviyo
from source_klaviyo.tuning import tune_process


def run(args: list[str] | None = None) -> None:
    args = sys.argv[1:] if args is None else args
    tune_process()
    try:
        source = SourceKlaviyo(record_pages=True)  # a bad SOURCE_KLAVIYO_NOW is a config error here
        shutdown.install(source.queue)
        launch(source, args)
    except shutdown.SyncStopped:
        shutdown.exit_stopped()
    except AirbyteTracedException as error:
        # The CDK would log the traceback too; an error the user can fix needs only its message.
        message = error.as_sanitized_airbyte_message()
        if error.failure_type == FailureType.config_error:
            trace_error(message).stack_trace = None
        line = filter_secrets(AirbyteEntrypoint.airbyte_message_to_string(message))
        status = error.as_connection_status_message()
        if status and args and args[0] == "check":
            # check answers a config error with a FAILED status, as the CDK does for errors inside check.
            shutdown.print_last(line, AirbyteEntrypoint.airbyte_message_to_string(status))
            return
        shutdown.print_last(line)
        sys.exit(1)


if __name__ == "__main__":
    run()
