"""Debian's nginx as a TLS-terminating gRPC proxy in front of the dev server (which has no TLS)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from infra.sockets import free_port
from tests.support.tls_certs import Issued

CONFIG = """
worker_processes 1;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ grpc_pass grpc://{upstream}; }}
    }}
    server {{
        listen 127.0.0.1:{mtls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {client_ca};
        ssl_verify_client on;
        location / {{ grpc_pass grpc://{upstream}; }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """nginx from the system (`apt-get install nginx-light`), if installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )


@asynccontextmanager
async def grpc_tls_proxy(
    folder: Path, upstream: str, server: Issued, client_ca: Path
) -> AsyncIterator[tuple[int, int]]:
    """nginx with a TLS port and an mTLS port (client certificates of `client_ca`) to `upstream`.

    Yields the two ports.
    """
    binary = nginx_binary()
    assert binary, "nginx is not installed (apt-get install nginx-light)"
    tls_port, mtls_port = free_port(), free_port()
    config = folder / "nginx.conf"
    config.write_text(
        CONFIG.format(
            dir=folder, tls_port=tls_port, mtls_port=mtls_port, cert=server.cert,
            key=server.key, client_ca=client_ca, upstream=upstream,
        )
    )  # fmt: skip
    log = (folder / "nginx.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        binary, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log"),
        "-g", "daemon off;", stdout=log, stderr=log,
    )  # fmt: skip
    try:
        async with asyncio.timeout(15):
            for port in (tls_port, mtls_port):
                while True:
                    assert process.returncode is None, (folder / "error.log").read_text()
                    try:
                        _, writer = await asyncio.open_connection("127.0.0.1", port)
                        writer.close()
                        break
                    except OSError:
                        await asyncio.sleep(0.05)
        yield tls_port, mtls_port
    finally:
        process.terminate()
        await process.wait()
        log.close()
