"""The time-skipping test server the examples run on: retry backoffs and timers pass at once."""

import logging
import sysconfig
from pathlib import Path

from temporalio.testing import WorkflowEnvironment


async def start_test_server() -> WorkflowEnvironment:
    """Start the time-skipping server of the `test` extra, or one the SDK downloads.

    The worker logs every failed try of an activity with its traceback; the examples print what
    the saga did instead, so the SDK's logs are kept to errors.
    """
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    installed = Path(sysconfig.get_path("scripts")) / "temporal-test-server"
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(installed) if installed.exists() else None
    )
