"""The codec server, as the Web UI calls it: token required, CORS for the UI's origin."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from infra.codec import ENCODING, EncryptionCodec
from infra.codec_server import create_codec_app
from infra.keyring import Keyring, new_key_entry, parse

TOKEN = "s3cret-token"
UI = "http://localhost:8233"
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"order_id": "A1"}')


@pytest.fixture
def codec() -> EncryptionCodec:
    return EncryptionCodec(Keyring(keys=dict(parse([new_key_entry("k1")], "t")), active="k1"))


@pytest.fixture
async def http(codec: EncryptionCodec) -> AsyncIterator[httpx.AsyncClient]:
    app = create_codec_app(codec, TOKEN, [UI])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://codec") as client:
        yield client


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


async def test_decodes_with_the_token(http: httpx.AsyncClient, codec: EncryptionCodec) -> None:
    [sealed] = await codec.encode([PLAIN])
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default", "Origin": UI}
    answer = await http.post("/decode", content=body(sealed), headers=headers)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == UI
    [decoded] = answer.json()["payloads"]
    assert base64.b64decode(decoded["data"]) == PLAIN.data
    # The token as the endpoint's first path segment, for a UI with no login.
    answer = await http.post(f"/{TOKEN}/decode", content=body(sealed))
    assert answer.status_code == 200


async def test_encodes_with_the_token(http: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = await http.post("/encode", content=body(PLAIN), headers=headers)
    assert answer.status_code == 200
    [encoded] = answer.json()["payloads"]
    assert base64.b64decode(encoded["metadata"]["encoding"]) == ENCODING


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/decode", {}),
        ("/decode", {"Authorization": "Bearer wrong"}),
        ("/decode", {"Authorization": f"Basic {TOKEN}"}),
        ("/wrong/decode", {}),
    ],
)
async def test_refuses_without_the_token(
    http: httpx.AsyncClient, codec: EncryptionCodec, path: str, headers: dict[str, str]
) -> None:
    [sealed] = await codec.encode([PLAIN])
    answer = await http.post(path, content=body(sealed), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert b"order_id" not in answer.content


async def test_answers_the_ui_cors_preflight(http: httpx.AsyncClient) -> None:
    preflight = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    answer = await http.options("/decode", headers=preflight)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == UI
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "x-namespace"} <= set(
        allowed.replace(" ", "").split(",")
    )
    other = await http.options("/decode", headers=preflight | {"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_bad_body_is_a_clear_400(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/decode", content="nope", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 400
