"""A real `redis-server` (Debian's package, which `.ci/run` installs) on a free port."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from infra.sockets import free_port


def redis_binary() -> str:
    """The `redis-server` binary; a skip where it is absent, a failure in CI (which has it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


@contextmanager
def running_redis(folder: Path, ready_within_s: float = 10.0) -> Iterator[str]:
    """Run an in-memory Redis (no snapshots, no append-only file); yields its URL."""
    port = free_port()
    with (folder / "redis.log").open("ab") as log:
        process = subprocess.Popen(
            [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdout=log, stderr=log,
        )  # fmt: skip
    try:
        _wait_for_ping(port, process, ready_within_s)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for_ping(port: int, process: subprocess.Popen[bytes], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    with redis.Redis(port=port, socket_connect_timeout=1) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}; see its log")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
