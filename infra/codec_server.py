"""The codec server: decrypts payloads for the Temporal Web UI (and encodes them for it).

The UI POSTs `{"payloads": [...]}` (payloads in protobuf JSON: base64 metadata values and data)
to `<endpoint>/decode` or `<endpoint>/encode`, with an `X-Namespace` header, and shows what
comes back. Only a caller with the bearer token gets plain payloads:

- `Authorization: Bearer <token>`: what the UI sends when its codec setting "pass access token"
  is on, and what scripts and `curl` send;
- or the token as the endpoint's first path segment (`http://host:port/<token>/decode`), for a
  UI that has no login to pass a token from, such as the dev server's in the demo. Whoever can
  read the UI's settings can then read the endpoint, so use it only where the UI itself is
  private (the demo binds everything to 127.0.0.1).

CORS lets the UI's origin (and only it) call the server from the browser.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

import structlog
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from infra.codec import DecryptionError, EncryptionCodec
from infra.exits import StartFailure
from infra.keyring import Keyring
from infra.logs import configure_logging
from infra.settings import Settings
from infra.sockets import listening_socket

log = structlog.get_logger()

#: The codec server and its port's setting, as a start failure names them.
CODEC_SERVER = "codec server, CODEC_SERVER_PORT"

Operation = Literal["decode", "encode"]
Namespace = Annotated[str | None, Header(alias="X-Namespace")]
Authorization = Annotated[str | None, Header()]


def create_codec_app(codec: PayloadCodec, token: str, cors_origins: list[str]) -> FastAPI:
    """The codec server's app.

    Args:
        codec: Encodes and decodes the payloads.
        token: The bearer token every call must present.
        cors_origins: Browser origins (the Web UI's) allowed to call it.
    """
    app = FastAPI(title="order-saga codec server", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors_origins,
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        # The UI's "include cross-origin credentials" option sends cookies along.
        allow_credentials=True,
    )

    def check(presented: str | None) -> None:
        # Constant-time, so that the token cannot be guessed byte by byte from timings.
        if presented is None or not hmac.compare_digest(presented.encode(), token.encode()):
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )

    async def convert(request: Request, op: Operation, namespace: str | None) -> Response:
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as err:
            raise HTTPException(400, f"expected {{'payloads': [...]}}: {err}") from err
        try:
            if op == "decode":
                converted = await codec.decode(payloads.payloads)
            else:
                converted = await codec.encode(payloads.payloads)
        except DecryptionError as err:
            raise HTTPException(422, str(err)) from err
        log.info("codec", op=op, namespace=namespace, payloads=len(converted))
        body = json_format.MessageToJson(Payloads(payloads=converted))
        return Response(body, media_type="application/json")

    @app.post("/{op}")
    async def with_bearer(
        op: Operation,
        request: Request,
        authorization: Authorization = None,
        x_namespace: Namespace = None,
    ) -> Response:
        """Decode or encode payloads; the token in the `Authorization` header."""
        scheme, _, value = (authorization or "").partition(" ")
        check(value.strip() if scheme.lower() == "bearer" else None)
        return await convert(request, op, x_namespace)

    @app.post("/{path_token}/{op}")
    async def with_path_token(
        path_token: str, op: Operation, request: Request, x_namespace: Namespace = None
    ) -> Response:
        """Decode or encode payloads; the token as the path's first segment."""
        check(path_token)
        return await convert(request, op, x_namespace)

    return app


def ensure_token_file(path: Path) -> str:
    """The token in `path`, made (random, readable by its owner only) if there is none yet."""
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def run_codec_server(settings: Settings) -> None:
    """Serve the codec server as the settings say, until interrupted.

    Raises:
        StartFailure: No key or no token is configured, or its port is taken.
    """
    keyring = Keyring.from_settings(settings)
    if keyring is None:
        raise StartFailure("set CODEC_KEY_FILE or CODEC_KEYS: the codec server needs the keys")
    if settings.codec_server_token is None:
        raise StartFailure("CODEC_SERVER_TOKEN (--codec-server-token) is required")
    sock = listening_socket(settings.codec_server_host, settings.codec_server_port, CODEC_SERVER)
    configure_logging(settings.logging_level, json=settings.log_json)
    token = settings.codec_server_token.get_secret_value()
    app = create_codec_app(EncryptionCodec(keyring), token, settings.cors_origins)
    config = uvicorn.Config(app, host=settings.codec_server_host, port=settings.codec_server_port)
    uvicorn.Server(config).run(sockets=[sock])
