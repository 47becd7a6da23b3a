"""`starter.py` as a user runs it: a separate process, with its outcome captured.

And what any command run in a process of its own says: its one failure line, its log.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from tests.support.paths import ROOT

STARTER = str(ROOT / "starter.py")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


class StarterRunner:
    """Runs `starter.py` with the given environment (Temporal address, services, task queue)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def __call__(self, *args: str) -> Run:
        return await run_python(self.env, STARTER, *args)


async def run_python(env: Mapping[str, str], *args: str) -> Run:
    """Run this interpreter with `args` in a process of its own; its exit code and output."""
    # Asynchronous, so that the worker in this process keeps working meanwhile.
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=dict(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def until_logged(log_file: Path, text: str) -> str:
    """The first line of `log_file` holding `text`, once the process has written it."""
    async with asyncio.timeout(10):
        while True:
            for line in log_file.read_text().splitlines():
                if text in line:
                    return line
            await asyncio.sleep(0.05)


def one_line(run: Run) -> str:
    """The single line a failed command printed on stderr, checked to be the only one."""
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert "Traceback" not in run.err
    return lines[0]


def failure_line(run: Run) -> str:
    """The one `error:` line of a command that reports its progress on stderr too: the last."""
    lines = run.err.strip().splitlines()
    assert "Traceback" not in run.err
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], run.err
    return lines[-1]


def new_order_id() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def saga_exists(client: Client, order_id: str) -> bool:
    """Whether any saga was ever started for the order (a direct, consistent look-up by id)."""
    try:
        await client.get_workflow_handle(f"order-{order_id}").describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
