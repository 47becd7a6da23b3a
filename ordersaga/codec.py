"""Payload encryption: AES-256-GCM over every payload, failures included, before Temporal sees it.

Each encrypted payload keeps only two metadata entries in the clear: its encoding
(`binary/encrypted`) and the id of the key that encrypted it, so that keys can rotate and old
histories still decode. Its data is a 12-byte random nonce followed by the AES-GCM ciphertext of
the whole original payload (metadata and data), with the key id as associated data, so that a
payload cannot be relabelled to another key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from ordersaga.keyring import Keyring, KeyringError
from ordersaga.search_attributes import saga_query
from ordersaga.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class DecryptionError(ValueError):
    """An encrypted payload cannot be decrypted: unknown key, or not what was encrypted."""


class EncryptionCodec(PayloadCodec):
    """Encrypts payloads with the keyring's active key; decrypts with whichever key they name.

    Payloads that are not encrypted pass through `decode` unchanged, so histories written
    before encryption was turned on still read.
    """

    def __init__(self, keyring: Keyring, *, encrypt: bool = True) -> None:
        """A codec over `keyring`.

        Args:
            keyring: The keys.
            encrypt: Whether `encode` encrypts; False only decodes (to roll encryption out,
                every process must be able to decode before any encrypts).
        """
        # One AESGCM per key, built once: the codec runs for every payload of every task.
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}
        self._active = keyring.active
        self._active_id = keyring.active.encode()
        self._encrypt = encrypt

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the active key (or leave it as it is if not encrypting)."""
        if not self._encrypt:
            return list(payloads)
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt each encrypted payload; pass the others through."""
        return [self.decrypt(payload) for payload in payloads]

    def holds(self, key_id: str) -> bool:
        """Whether the keyring has the key `key_id`, so payloads under it decrypt."""
        return key_id in self._ciphers

    def encrypt(self, payload: Payload) -> Payload:
        """One payload, encrypted with the active key."""
        # AES-GCM is fast enough per payload (microseconds) that a thread pool would cost more.
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._active].encrypt(
            nonce, payload.SerializeToString(), self._active_id
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self._active_id}, data=nonce + sealed
        )

    def decrypt(self, payload: Payload) -> Payload:
        """One payload, decrypted with the key it names; unencrypted payloads as they are."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(f"payload encrypted with key {key_id!r}, not in the keyring")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag as err:
            raise DecryptionError(f"payload under key {key_id!r} does not decrypt") from err
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def codec_from_settings(settings: Settings) -> EncryptionCodec | None:
    """The codec the settings configure, or None for plain payloads.

    Raises:
        KeyringError: A key is unusable, or encryption is on with no key.
    """
    keyring = Keyring.from_settings(settings)
    if keyring is None:
        if settings.codec_encrypt:
            raise KeyringError("CODEC_ENCRYPT is on but no key is configured (CODEC_KEY_FILE)")
        return None
    encrypt = settings.codec_encrypt is not False
    return EncryptionCodec(keyring, encrypt=encrypt)


def data_converter(codec: PayloadCodec | None) -> DataConverter:
    """Pydantic payloads, encoded by `codec` with failure messages and stack traces too."""
    if codec is None:
        return pydantic_data_converter
    return DataConverter(
        payload_converter_class=PydanticPayloadConverter,
        payload_codec=codec,
        # Moves a failure's message and stack trace into a payload, which the codec encrypts:
        # error messages may quote order data.
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


class CodecMismatch(Exception):
    """This process cannot encode or decode payloads as the namespace's sagas are written."""


async def check_codec_agrees(client: Client) -> None:
    """Refuse to go on with a codec that does not read the namespace's newest saga.

    The newest saga's input shows how the namespace's sagas are written. A process without its
    key would start sagas in plain text (names, addresses, payment tokens stored readable) and
    fail on every answer; one without the key id it names cannot read it.

    Raises:
        CodecMismatch: Saying which setting to fix.
    """
    newest = [run async for run in client.list_workflows(saga_query(), limit=1)]
    if not newest:
        return  # a namespace without sagas: nothing to agree with
    handle = client.get_workflow_handle(newest[0].id, run_id=newest[0].run_id)
    started = await anext(handle.fetch_history_events(page_size=1))
    payloads = started.workflow_execution_started_event_attributes.input.payloads
    metadata = payloads[0].metadata if payloads else {}
    if metadata.get("encoding") != ENCODING:
        return
    namespace = client.namespace
    key_id = metadata.get(KEY_ID, b"").decode(errors="replace")
    # The codec the client was connected with: the keys it holds were read once, by `connect`.
    codec = client.data_converter.payload_codec
    if not isinstance(codec, EncryptionCodec):
        raise CodecMismatch(
            f"the sagas in namespace {namespace} are encrypted (key {key_id!r}) and no key is "
            "set: set CODEC_KEY_FILE (the demo's is data/codec-keys)"
        )
    if not codec.holds(key_id):
        raise CodecMismatch(
            f"the sagas in namespace {namespace} are encrypted with key {key_id!r}, which "
            "CODEC_KEY_FILE / CODEC_KEYS do not hold"
        )
