"""The unit tier refuses what would make it slow: a process, a TCP connection."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.unit.conftest import NotAUnitTest


def test_a_process_is_refused() -> None:
    with pytest.raises(NotAUnitTest, match="started a process"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_a_tcp_connection_is_refused(closed_port: int) -> None:
    with socket.socket() as sock, pytest.raises(NotAUnitTest, match="connected to"):
        sock.connect(("127.0.0.1", closed_port))
