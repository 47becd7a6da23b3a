"""OpenTelemetry tracing: one trace from `starter.py` through the workflow into each service.

Every process calls `configure_tracing(<its name>)` once at start. Where the spans go:

- `OTEL_EXPORTER_OTLP_ENDPOINT` (such as `http://localhost:4318`): OTLP over HTTP, to a
  collector, Jaeger or Tempo; the other `OTEL_EXPORTER_OTLP_*` variables apply as usual;
- `TRACES_FILE=path`: one JSON object per span and line, appended to `path` (the embedded
  default's choice: nothing else to run);
- neither: tracing is off, and nothing below costs anything.

How the trace is carried: the Temporal clients and workers get `TracingInterceptor`
(`tracing_interceptors()`, used by `infra.temporal.connect`), which passes the context in
workflow and activity headers; the HTTP clients are instrumented, so the activities' calls send a
`traceparent` header; FastAPI traces the services' requests itself (its native telemetry,
on as soon as a tracer provider is set), so their handler spans join the trace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.util.types import AttributeValue
from temporalio.client import Interceptor as ClientInterceptor

#: The file spans are written to, one JSON object per line.
TRACES_FILE_ENV = "TRACES_FILE"
#: The OTLP/HTTP endpoint (OpenTelemetry's own variable), such as `http://localhost:4318`.
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
#: OpenTelemetry's own variable for the service name; it beats the name a process passes.
SERVICE_NAME_ENV = "OTEL_SERVICE_NAME"

#: Whether this process set tracing up (and so whether to add the interceptors).
_enabled = False


def configure_tracing(
    service_name: str, *, otlp_endpoint: str | None = None, traces_file: Path | None = None
) -> bool:
    """Set up tracing for this process, once, before any client or app is made.

    Args:
        service_name: The process's `service.name` (`order-saga-worker`, ...).
        otlp_endpoint: OTLP/HTTP base URL; default `$OTEL_EXPORTER_OTLP_ENDPOINT`.
        traces_file: JSON-lines file of spans; default `$TRACES_FILE`.

    Returns:
        Whether tracing is on.
    """
    global _enabled
    otlp_endpoint = otlp_endpoint or os.environ.get(OTLP_ENDPOINT_ENV) or None
    file_name = traces_file or os.environ.get(TRACES_FILE_ENV) or None
    if _enabled or not (otlp_endpoint or file_name):
        return _enabled
    resource = Resource.create({SERVICE_NAME: os.environ.get(SERVICE_NAME_ENV) or service_name})
    provider = TracerProvider(resource=resource)
    if file_name:
        # Written as each span ends: a file costs little, and a process ended with os._exit
        # (see `infra.temporal.exit_process`) loses nothing.
        provider.add_span_processor(SimpleSpanProcessor(_json_lines_exporter(Path(file_name))))
    if otlp_endpoint:
        # Imported here: the exporter pulls in protobuf and requests, needed only with OTLP.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    # Every HTTP client of the process: the activities' pool (aiohttp) and the starter's
    # tokenizing call (httpx).
    AioHttpClientInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    _enabled = True
    return True


def _json_lines_exporter(path: Path) -> ConsoleSpanExporter:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Line-buffered append: several processes may share one file, each line written whole.
    out = path.open("a", buffering=1, encoding="utf-8")

    def one_line(span: ReadableSpan) -> str:
        return f"{span.to_json(indent=None)}\n"

    return ConsoleSpanExporter(out=out, formatter=one_line)


def tracing_enabled() -> bool:
    """Whether `configure_tracing` turned tracing on in this process."""
    return _enabled


def tracing_interceptors() -> list[ClientInterceptor]:
    """Interceptors for `Client.connect`: Temporal's tracing, if tracing is on.

    `TracingInterceptor` is also a worker interceptor, and a worker takes its client's, so a
    worker built on such a client traces workflows and activities too.
    """
    if not _enabled:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


@contextmanager
def traced(name: str, **attributes: AttributeValue) -> Iterator[trace.Span]:
    """A span around a block, current while it runs (a no-op span if tracing is off)."""
    tracer = trace.get_tracer("order-saga")
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


def trace_ids(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the current span's ids, to go from a log line to its trace."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def flush_tracing() -> None:
    """Send the spans still buffered (call before the process ends, e.g. on `os._exit`)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()
