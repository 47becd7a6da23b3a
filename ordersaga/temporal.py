"""Connecting to Temporal the same way from every process."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter


async def connect(address: str, namespace: str) -> Client:
    """A client that speaks pydantic models, so every payload is validated on the way in."""
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter
    )


def ui_link(ui_url: str, namespace: str, workflow_id: str) -> str:
    """The Web UI page of one workflow."""
    return f"{ui_url.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}"


def exit_process(code: int) -> NoReturn:
    """End a process that used a Temporal client, skipping interpreter finalization.

    The SDK's Rust runtime keeps threads that can touch the GIL while CPython finalizes, which
    aborts the process now and then (temporalio/sdk-python#300). Everything the process had to
    do is done by now, so flush the output and leave at once.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
