"""How a command ends: its exit code, and one line, never a traceback, when it cannot go on.

Exit codes: 0 done, 1 the command ran and the answer is "no" (a saga that failed, a reused
order id), 2 the command could not do its work (bad input, a setting, an unreachable or busy
part), 130 interrupted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import IO, NoReturn

from infra.tracing import flush_tracing


class StartFailure(Exception):
    """A command cannot start, or cannot go on; the message says what failed and what to do."""


def log_path(log: IO[bytes] | int) -> str | None:
    """Where a process's log is written, if to a file (not DEVNULL or an inherited stream)."""
    name = getattr(log, "name", None)
    return name if isinstance(name, str) else None


def see_log(log: IO[bytes] | int) -> str:
    """`see <path>` for a log written to a file, to end a failure's line with.

    If the log's last line is an `error: ...` line (what our commands print as they fail), it
    is quoted too: it usually says why.
    """
    name = log_path(log)
    if name is None:
        return "its output was not kept"
    with suppress(OSError), open(name, "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
        lines = file.read().decode(errors="replace").strip().splitlines()
        if lines and lines[-1].startswith("error: "):
            return f"it said {textwrap.shorten(lines[-1], 160)!r}; see {name}"
    return f"see {name}"


async def until_ready(
    process: asyncio.subprocess.Process,
    answers: Callable[[], Awaitable[bool]],
    what: str,
    log: IO[bytes] | int,
    within_s: float,
) -> None:
    """Return once `answers()` says the server `process` runs is ready.

    Raises:
        StartFailure: `process` exited first, or `within_s` seconds passed; naming `what` and
            its log.
    """
    try:
        async with asyncio.timeout(within_s):
            while process.returncode is None:
                if await answers():
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise StartFailure(
            f"{what} did not answer within {within_s:.0f} s; {see_log(log)}"
        ) from None
    raise StartFailure(f"{what} exited with code {process.returncode} at start; {see_log(log)}")


def run_to_exit(command: Callable[[], int | None]) -> NoReturn:
    """Run a command and end the process with its exit code (None: 0).

    A `StartFailure` prints its one line on stderr and exits 2; Ctrl-C exits 130; output piped
    into a reader that stopped early (`| head`) ends quietly. SIGTERM (`kill`, a service
    manager's stop) ends it as Ctrl-C does, so that what it started (servers, workers) is
    stopped on the way out rather than left running; commands that handle SIGTERM themselves
    replace this.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = command() or 0
    except StartFailure as err:
        print(f"error: {err}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # Whatever read our output is gone: send the rest nowhere, so the flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    exit_process(code)


def exit_process(code: int) -> NoReturn:
    """End a process that used a Temporal client, skipping interpreter finalization.

    The SDK's Rust runtime keeps threads that can touch the GIL while CPython finalizes, which
    aborts the process now and then (temporalio/sdk-python#300). Everything the process had to
    do is done by now, so flush the output and leave at once.
    """
    flush_tracing()
    for stream in (sys.stdout, sys.stderr):
        with suppress(BrokenPipeError):
            stream.flush()
    os._exit(code)
