"""Structured logging: JSON lines by default, readable console output in a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from infra.log_context import quiet_sdk_messages, temporal_fields
from infra.tracing import trace_ids


def configure_logging(
    level: int = logging.INFO, *, json: bool | None = None, stream: TextIO = sys.stderr
) -> None:
    """Route structlog and the standard `logging` module (Temporal's loggers) to one format.

    Args:
        level: The lowest level written.
        json: JSON lines if true, console output if false; by default console in a terminal.
        stream: Where the lines go.
    """
    if json is None:
        json = not stream.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # The extra of stdlib records (workflow.logger's ids and fields), as flat fields.
        structlog.stdlib.ExtraAdder(),
        temporal_fields,
        trace_ids,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    quiet_sdk_messages()
    skip_unused_record_fields()
    structlog.configure(
        # Lines below the level are dropped first, before the other processors do their work:
        # otherwise a debug line costs as much as a written one.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # In JSON a traceback is one text field; the console renderer prints it itself.
                *([structlog.processors.format_exc_info] if json else []),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


#: The `logging` module's switches for what a record gathers, set so it skips what no line here
#: writes: its caller's file (found by walking the stack on every line, deep in a workflow's),
#: thread and process. The logging HOWTO's "Optimization" section names them.
UNUSED_RECORD_FIELDS: dict[str, Any] = {
    "_srcfile": None,
    "logThreads": False,
    "logProcesses": False,
    "logMultiprocessing": False,
}


def skip_unused_record_fields() -> None:
    """Stop `logging` gathering what no line here writes (`UNUSED_RECORD_FIELDS`), process-wide."""
    for name, value in UNUSED_RECORD_FIELDS.items():
        setattr(logging, name, value)
