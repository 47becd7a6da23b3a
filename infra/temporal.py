"""Connecting to Temporal the same way from every process."""

from __future__ import annotations

import asyncio
import re

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import HeaderCodecBehavior
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from infra.codec import codec_from_settings, data_converter
from infra.exits import StartFailure
from infra.runtime import default_runtime
from infra.settings import Settings
from infra.tracing import tracing_interceptors
from workflows.search_attributes import SEARCH_ATTRIBUTES

#: How long a server that takes the connection but never answers (a wrong port, a firewall that
#: drops packets) is waited for. The SDK alone waits 30 s; a reachable server, Temporal Cloud
#: over TLS included, answers within a second or two.
CONNECT_TIMEOUT_S = 10.0


async def connect(
    address: str | None = None,
    namespace: str | None = None,
    *,
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> Client:
    """A client that speaks pydantic models, encrypted as the settings say, over TLS if set.

    Every process connects through here, so that all of them encode payloads the same way.

    Args:
        address: The frontend host:port, instead of the settings' one.
        namespace: The namespace, instead of the settings' one.
        settings: The settings; by default read from the environment (and Temporal's profile).
        runtime: The Temporal runtime, such as `infra.runtime.worker_runtime`'s (a
            worker's metrics are recorded in its client's runtime); if None, the process's
            `infra.runtime.default_runtime()`, which logs through Python's logging.
        timeout_s: How long to wait for the server to answer.

    Raises:
        TemporalUnreachable: No server answers at the address, in one line saying what to do.
    """
    settings = settings or Settings()
    address = address or settings.temporal_address
    codec = codec_from_settings(settings)
    connecting = Client.connect(
        address,
        namespace=namespace or settings.temporal_namespace,
        data_converter=data_converter(codec),
        # Headers carry the saga's events (infra.eventbus.publishing): encrypted like
        # every payload. Without a codec there is nothing to encode, and the SDK would still
        # visit every header of every workflow task to find that out.
        header_codec_behavior=(
            HeaderCodecBehavior.CODEC if codec is not None else HeaderCodecBehavior.NO_CODEC
        ),
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if (api_key := settings.temporal_api_key) else None,
        # Tracing, if `infra.tracing.configure_tracing` turned it on; workers inherit it.
        interceptors=tracing_interceptors(),
        runtime=runtime or default_runtime(),
    )
    try:
        return await asyncio.wait_for(connecting, timeout_s)
    except TimeoutError:
        silent = TimeoutError(f"no answer within {timeout_s:g} s")
        raise TemporalUnreachable(unreachable_line(address, silent)) from None
    except RuntimeError as err:  # what the SDK raises for a server it cannot reach
        raise TemporalUnreachable(unreachable_line(address, err)) from err


async def ensure_registered(client: Client) -> None:
    """Register any of the saga's search attributes the namespace lacks.

    Sagas upsert them as they go; on a server without them every workflow task would fail.
    """
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS as the settings give it: off, on with the system's CAs, or with our files (mTLS).

    TLS is on if asked for, or if any TLS file or an API key is given (an API key must not
    cross the network in the clear).
    """
    files = (
        settings.temporal_tls_server_ca_cert_path,
        settings.temporal_tls_client_cert_path,
        settings.temporal_tls_client_key_path,
    )
    wanted = settings.temporal_tls
    if wanted is None:
        wanted = (
            any(files)
            or settings.temporal_tls_server_name is not None
            or bool(settings.temporal_api_key)
        )
    if not wanted:
        return False
    ca, cert, key = (path.read_bytes() if path else None for path in files)
    return TLSConfig(
        server_root_ca_cert=ca,
        client_cert=cert,
        client_private_key=key,
        domain=settings.temporal_tls_server_name,
    )


def ui_link(ui_url: str, namespace: str, workflow_id: str) -> str:
    """The Web UI page of one workflow."""
    return f"{ui_url.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}"


class TemporalUnreachable(StartFailure):
    """The Temporal server cannot be reached; the message says where it was looked for."""


def unreachable_line(address: str, error: BaseException) -> str:
    """One line for a Temporal server that cannot be reached, instead of the transport's error.

    Args:
        address: Where it was looked for.
        error: What `Client.connect` raised; its first line is kept as the cause if it is not
            the Rust transport's `tonic::...` debug text.
    """
    text = str(error)
    cause = text.splitlines()[0] if text else type(error).__name__
    if re.search(r"(?i)certificate|UnknownIssuer|invalid peer", text):
        cause = "its TLS certificate is not trusted: check TEMPORAL_TLS_SERVER_CA_CERT_PATH"
    elif "tonic::" in cause or "Transport" in cause:
        cause = "connection refused or timed out"
    return (
        f"cannot reach Temporal at {address} ({cause}): start it "
        "(order-saga demo) or point --address or TEMPORAL_ADDRESS at it"
    )
