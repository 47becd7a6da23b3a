"""The Temporal runtime of a process: where the SDK's core logs go, and a worker's metrics.

The SDK's core (in Rust) writes its warnings straight to stderr by default, past the process's
logging: into the demo's terminal, and unstructured into a worker's JSON log. Every runtime
made here forwards them to Python's `temporalio.core` logger instead, which
`infra.logs.configure_logging` formats like every other line.
"""

from __future__ import annotations

import functools
import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from infra.metrics import SAGA_DURATION_BUCKETS_S, STEP_DURATION_BUCKETS_S

#: The SDK's own default levels, forwarded to Python logging.
FORWARDED_LOGS = LoggingConfig(
    filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
    forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
)


@functools.cache
def default_runtime() -> Runtime:
    """The runtime of a process that serves no metrics (one per process, as the SDK's own)."""
    return Runtime(telemetry=TelemetryConfig(logging=FORWARDED_LOGS))


@functools.cache
def replay_runtime() -> Runtime:
    """The runtime of a replay that judges a history: its failing is an answer, not a warning."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    forwarded = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(quiet, forwarded)))


def worker_runtime(metrics_address: str | None) -> Runtime:
    """A runtime serving Prometheus metrics on `metrics_address`; `default_runtime()` if unset.

    Pass it to `infra.temporal.connect(runtime=...)`; a worker built on that client records
    its own metrics and the saga's into it.

    Args:
        metrics_address: `host:port` to serve `/metrics` on, such as `127.0.0.1:9464` (or
            `0.0.0.0:9464` in a container); None or empty for no metrics.

    Raises:
        ValueError: The exporter could not bind `metrics_address`.
    """
    if not metrics_address:
        return default_runtime()
    return Runtime(
        telemetry=TelemetryConfig(
            logging=FORWARDED_LOGS,
            metrics=PrometheusConfig(
                bind_address=metrics_address,
                # Seconds, the Prometheus convention, so that one PromQL threshold reads the
                # same for the saga's histograms, the SDK's and the Temporal server's.
                durations_as_seconds=True,
                histogram_bucket_overrides={
                    "saga_duration": SAGA_DURATION_BUCKETS_S,
                    "saga_step_duration": STEP_DURATION_BUCKETS_S,
                },
            ),
        )
    )
