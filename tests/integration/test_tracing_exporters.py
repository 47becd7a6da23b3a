"""Where spans go: OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else nowhere.

Tracing is set up once per process, so each case runs in a process of its own.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

#: A process that makes one span and flushes it, as `exit_process` does.
ONE_SPAN = """
from infra.tracing import configure_tracing, flush_tracing, traced, tracing_interceptors
print(configure_tracing("order-saga-test"), len(tracing_interceptors()))
with traced("one span", order_id="X1"):
    pass
flush_tracing()
"""


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it is sent."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    Collector.received = []
    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def run_one_span(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", ONE_SPAN],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_otlp_endpoint_receives_the_spans(collector: str) -> None:
    assert run_one_span({"OTEL_EXPORTER_OTLP_ENDPOINT": collector}) == "True 1"
    [(path, content_type, body)] = Collector.received
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert b"one span" in body and b"order-saga-test" in body


def test_no_exporter_configured_means_no_tracing() -> None:
    assert run_one_span({}) == "False 0"
