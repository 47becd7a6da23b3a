"""After a saga runs, Temporal holds only ciphertext, and the card number is nowhere at all.

The saga is placed as a user would (`starter.py place --card ...`), run by a worker process of
its own, against the session's dev server, services and event store, all encrypting with the
session's keyring (`payload_keys` in conftest).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from temporalio.client import Client

from ordersaga.codec import ENCODING
from ordersaga.devserver import DevServer
from ordersaga.ops.stack import worker_process
from tests.starter_runner import StarterRunner, new_order_id

#: A valid test card used by no other test, so that finding it anywhere is this test's leak.
CARD = "5555555555554444"
#: Only the order's (encrypted) input carries the shipping address.
ADDRESS_LINE = "1 Example Street"


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


async def test_card_number_nowhere_and_payloads_encrypted(
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
                "place", "--order-id", order_id, "--item", "SKU-BOOK:1:1500", "--card", CARD
            )
    # It ran normally, encrypted: the saga ended (confirmed, unless another part refuses).
    assert "Started saga" in run.out, run.err

    handle = client.get_workflow_handle(f"order-{order_id}")
    history = await handle.fetch_history()
    exported = history.to_json()
    described = await handle.describe()

    payloads = list(payloads_in(json.loads(exported)))
    assert payloads, "the history has payloads"
    for where, payload in payloads:
        assert base64.b64decode(payload["metadata"]["encoding"]) == ENCODING, where
        assert "encryption-key-id" in payload["metadata"], where
    assert ADDRESS_LINE.encode() not in exported.encode()
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
