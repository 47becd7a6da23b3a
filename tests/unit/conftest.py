"""The unit tier: no server, no process, no network; what a developer runs on every save.

Held to it: a unit test that starts a process or opens a TCP connection fails at once, naming
what it tried, so the tier stays fast as it grows.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


class NotAUnitTest(AssertionError):
    """A test of the unit tier reached outside its process."""


@pytest.fixture(autouse=True)
def stays_in_its_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse processes and TCP connections: those tests belong in tests/integration or e2e."""

    def no_process(self: subprocess.Popen[Any], args: Any, *rest: Any, **options: Any) -> None:
        raise NotAUnitTest(f"a unit test started a process ({args!r}): move it to integration")

    connect = socket.socket.connect

    def no_tcp(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NotAUnitTest(f"a unit test connected to {address!r}: move it to integration")
        connect(self, address)

    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    monkeypatch.setattr(socket.socket, "connect", no_tcp)
    yield
