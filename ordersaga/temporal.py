"""Connecting to Temporal the same way from every process."""

from __future__ import annotations

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
