"""After a saga runs, Temporal holds only ciphertext, and the card number is nowhere at all.

The saga is placed as a user would (`starter.py place --card ...`), run by a worker process of
its own, against the session's dev server, services and event store, all encrypting with the
session's keyring (`payload_keys` in conftest). Failure messages are the exception, readable on
purpose (the CLI and the Web UI show them): an aborted saga's carry its reason and no personal
data.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from infra.codec import ENCODING
from infra.devserver import DevServer, installed_binary
from ops.stack import worker_process
from tests.support.starter_runner import StarterRunner, new_order_id

#: A valid test card used by no other test, so that finding it anywhere is this test's leak.
CARD = "5555555555554444"
#: Only the order's (encrypted) input carries the customer's name and shipping address.
PERSONAL = ("Ada Demo", "1 Example Street", "Springfield")

#: The postal code no carrier serves: Shipping refuses, the saga aborts (`services/shipping.py`).
UNSERVED = "00000"


def payloads_in(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every payload (a dict with `metadata`) in an exported history, with where it is.

    Left out: search attributes, which the server indexes, so they are never encoded (they hold
    states and ids only), and what the SDK's core writes itself: the markers `workflow.patched`
    records (the patch id only) and a local activity marker's `data` (its sequence number,
    attempt, type and times; its result is encoded like any payload).
    """
    if isinstance(node, dict):
        if isinstance(node.get("metadata"), dict) and "encoding" in node["metadata"]:
            yield path, node
        for key, value in node.items():
            if key in ("searchAttributes", "patch-data"):
                continue
            if node.get("markerName") == "core_local_activity" and key == "details":
                value = {name: part for name, part in value.items() if name != "data"}
            yield from payloads_in(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from payloads_in(value, f"{path}[{index}]")


def raw_bytes(*paths: Path) -> bytes:
    """The bytes of files and of their SQLite WAL and journal companions, where they exist."""
    found = b""
    for path in paths:
        for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
            if candidate.exists():
                found += candidate.read_bytes()
    return found


@pytest.mark.parametrize(
    ("postal_code", "failure"),
    [
        ("12345", None),
        (UNSERVED, "schedule_shipment failed: ShippingUnavailable: no carrier serves this"),
    ],
    ids=["confirmed", "aborted"],
)
async def test_card_number_nowhere_and_payloads_encrypted(
    postal_code: str,
    failure: str | None,
    client: Client,
    dev_server: DevServer,
    services_url: str,
    event_bus_url: str,
    tmp_path: Path,
) -> None:
    order_id = new_order_id()
    task_queue = f"secrets-{order_id}"
    worker_log = tmp_path / "worker.log"
    with worker_log.open("ab") as log:
        async with worker_process(
            dev_server.address, task_queue, services_url, log, data_dir=tmp_path
        ):
            starter = StarterRunner(
                os.environ
                | {
                    "TEMPORAL_ADDRESS": dev_server.address,
                    "SERVICES_URL": services_url,
                    "TASK_QUEUE": task_queue,
                }
            )
            run = await starter(
                "place",
                *("--order-id", order_id, "--item", "SKU-BOOK:1:1500", "--card", CARD),
                *("--postal-code", postal_code),
            )
    # It ran normally, encrypted: the saga ended (confirmed, unless another part refuses).
    assert "Started saga" in run.out, run.err

    handle = client.get_workflow_handle(f"order-{order_id}")
    history = await handle.fetch_history()
    exported = history.to_json()
    described = await handle.describe()

    payloads = list(payloads_in(json.loads(exported)))
    assert payloads, "the history has payloads"
    # The saga's events ride in its activities' headers: encrypted like the rest.
    assert any(where.endswith("/header/fields/saga-events") for where, _ in payloads)
    for where, payload in payloads:
        assert base64.b64decode(payload["metadata"]["encoding"]) == ENCODING, where
        assert "encryption-key-id" in payload["metadata"], where
    for personal in PERSONAL:
        assert personal not in exported, personal
    # A failed saga's reason reads as it is, in the history the CLI and the Web UI show.
    if failure:
        [ended] = [
            e for e in history.events if e.HasField("workflow_execution_failed_event_attributes")
        ]
        assert failure in ended.workflow_execution_failed_event_attributes.failure.message
        # As the `temporal` CLI prints it, with no codec: in words, not "Encoded failure".
        show = await asyncio.create_subprocess_exec(
            installed_binary("temporal"), "workflow", "show", "--address", dev_server.address,
            "--workflow-id", handle.id, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        shown = (await show.communicate())[0].decode()
        assert show.returncode == 0
        assert failure in shown and "Encoded failure" not in shown
        assert not any(personal in shown for personal in PERSONAL)
    assert b'"order_id"' not in b"".join(base64.b64decode(p.get("data", "")) for _, p in payloads)

    # The card number: not in the history, search attributes, memo, any log or store.
    places = {
        "exported history": exported.encode(),
        "history protobuf": b"".join(e.SerializeToString() for e in history.events),
        "search attributes": described.raw_description.SerializeToString(),
        "starter output": (run.out + run.err).encode(),
        "worker log": worker_log.read_bytes(),
        "Temporal's database": raw_bytes(dev_server.db_file) if dev_server.db_file else b"",
        "event store": raw_bytes(Path(event_bus_url.removeprefix("sqlite:///"))),
    }
    assert places["Temporal's database"], "the dev server keeps a SQLite file"
    assert places["event store"], "the event store was written"
    for where, data in places.items():
        assert CARD.encode() not in data, f"card number found in {where}"
        assert CARD[:8].encode() not in data, f"card number prefix found in {where}"
