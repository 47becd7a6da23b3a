"""TLS and mTLS to Temporal, from the settings, through nginx terminating TLS in front of the
dev server; a server whose certificate chains to another CA is refused."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import RPCError

from infra.devserver import DevServer
from infra.settings import Settings
from infra.temporal import TemporalUnreachable, connect
from tests.support.nginx_proxy import grpc_tls_proxy, nginx_binary
from tests.support.starter_runner import STARTER
from tests.support.tls_certs import CertificateAuthority, Issued

pytestmark = pytest.mark.skipif(
    nginx_binary() is None, reason="nginx is not installed (.ci/run installs nginx-light)"
)


@dataclass(frozen=True)
class Proxy:
    tls: str
    mtls: str
    ca: Path
    other_ca: Path
    client: Issued


@pytest.fixture(scope="module")
async def proxy(
    dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Proxy]:
    folder = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority(folder, "test-ca")
    other = CertificateAuthority(folder, "other-ca")
    server = ca.issue("server", server=True)
    client = ca.issue("client", server=False)
    async with grpc_tls_proxy(folder, dev_server.address, server, ca.pem) as (tls, mtls):
        yield Proxy(f"127.0.0.1:{tls}", f"127.0.0.1:{mtls}", ca.pem, other.pem, client)


async def can_call(settings: Settings) -> bool:
    client = await connect(settings=settings)
    await client.workflow_service.get_system_info(GetSystemInfoRequest())
    return True


async def test_tls(proxy: Proxy) -> None:
    settings = Settings(temporal_address=proxy.tls, temporal_tls_server_ca_cert_path=proxy.ca)
    assert await can_call(settings)


async def test_mtls(proxy: Proxy) -> None:
    settings = Settings(
        temporal_address=proxy.mtls,
        temporal_tls_server_ca_cert_path=proxy.ca,
        temporal_tls_client_cert_path=proxy.client.cert,
        temporal_tls_client_key_path=proxy.client.key,
    )
    assert await can_call(settings)
    without_cert = Settings(temporal_address=proxy.mtls, temporal_tls_server_ca_cert_path=proxy.ca)
    # nginx refuses the request (HTTP 400 before gRPC), which the client reports as an error.
    with pytest.raises((RPCError, TemporalUnreachable)) as refused:
        await can_call(without_cert)
    print("mTLS without a client certificate:", refused.value)


async def test_wrong_ca_is_refused_clearly(proxy: Proxy) -> None:
    settings = Settings(temporal_address=proxy.tls, temporal_tls_server_ca_cert_path=proxy.other_ca)
    with pytest.raises(TemporalUnreachable, match="TLS certificate is not trusted") as refused:
        await can_call(settings)
    print("wrong CA:", refused.value)


async def test_starter_reports_a_wrong_ca_in_one_line(proxy: Proxy) -> None:
    env = os.environ | {
        "TEMPORAL_ADDRESS": proxy.tls,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(proxy.other_ca),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, STARTER, "status", "nope", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach Temporal"), lines
    assert "TLS certificate is not trusted" in lines[0]
    print("starter:", lines[0])
