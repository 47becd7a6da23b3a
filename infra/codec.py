"""Payload encryption: AES-256-GCM over every payload before Temporal sees it.

Each encrypted payload keeps only two metadata entries in the clear: its encoding
(`binary/encrypted`) and the id of the key that encrypted it, so that keys can rotate and old
histories still decode. Its data is a 12-byte random nonce followed by the AES-GCM ciphertext of
the whole original payload (metadata and data), with the key id as associated data, so that a
payload cannot be relabelled to another key.

Failure messages stay readable (in the `temporal` CLI, in the Web UI's history): the saga's
failures name states, steps and the services' reasons, never personal data, and a failure's
details are payloads, encrypted like any other.

Where this process encrypts, a payload that arrives unencrypted (a `temporal workflow start`
without the codec flags) is refused: it is already stored readable, and nothing must add to it.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import CompositePayloadConverter, DataConverter, PayloadCodec

from infra.keyring import Keyring, KeyringError
from infra.settings import Settings
from workflows.search_attributes import saga_query

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12

#: Metadata with which a codec that encrypts marks a payload that arrived unencrypted.
ARRIVED_UNENCRYPTED = "arrived-unencrypted"

#: Why such a payload is refused, and what to do.
UNENCRYPTED_PROBLEM = (
    "input: arrived unencrypted, and encryption is on: start orders with starter.py, or give "
    "the temporal CLI its codec flags (docs/running.md); what was sent is stored readable in "
    "this workflow's history until it is deleted (temporal workflow delete)"
)


class DecryptionError(ValueError):
    """An encrypted payload cannot be decrypted: unknown key, or not what was encrypted."""


class UnencryptedPayload(ValueError):
    """A payload arrived unencrypted where encryption is on, for a type that has no refusal."""


class EncryptionCodec(PayloadCodec):
    """Encrypts payloads with the keyring's active key; decrypts with whichever key they name.

    Payloads that are not encrypted pass through `decode`, so histories written before
    encryption was turned on still read; where it encrypts, it marks them (`ARRIVED_UNENCRYPTED`)
    for `EncryptedOnlyPayloadConverter` to refuse.
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
        """Decrypt each encrypted payload; pass the others through, marked if encrypting."""
        return [self._decoded(payload) for payload in payloads]

    def _decoded(self, payload: Payload) -> Payload:
        if not self._encrypt or payload.metadata.get("encoding") == ENCODING:
            return self.decrypt(payload)
        marked = Payload()
        marked.CopyFrom(payload)
        marked.metadata[ARRIVED_UNENCRYPTED] = b"1"
        return marked

    @property
    def encrypts(self) -> bool:
        """Whether `encode` encrypts (and so unencrypted payloads are refused)."""
        return self._encrypt

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


#: pydantic's converters, made once: each keeps a cache of the type adapters it has built.
_PYDANTIC_CONVERTERS = tuple(PydanticPayloadConverter().converters.values())


class SagaPayloadConverter(CompositePayloadConverter):
    """Pydantic payloads (`temporalio.contrib.pydantic`), converted by one set of converters.

    The SDK makes a payload converter for every workflow it runs and two for every workflow
    task; a new `PydanticPayloadConverter` would build its pydantic type adapters anew each
    time, so every instance shares the process's.
    """

    def __init__(self) -> None:
        """Convert with the process's shared pydantic converters."""
        super().__init__(*_PYDANTIC_CONVERTERS)


class EncryptedOnlyPayloadConverter(SagaPayloadConverter):
    """Pydantic payloads, where payloads that arrived unencrypted are refused.

    A type that can say "refused" (the saga's input: `arrived_unencrypted()` on a member of its
    type hint) gets its refusal, so the saga ends refused in one line, having done nothing; any
    other value is refused with `UnencryptedPayload`.
    """

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[Any] | None = None
    ) -> list[Any]:
        """The values of `payloads`, or their refusals if any arrived unencrypted."""
        if not any(ARRIVED_UNENCRYPTED in payload.metadata for payload in payloads):
            return super().from_payloads(payloads, type_hints)
        refusals = [_refusal(hint) for hint in type_hints or []]
        if len(refusals) != len(payloads) or None in refusals:
            raise UnencryptedPayload(UNENCRYPTED_PROBLEM)
        return refusals


def _refusal(hint: Any) -> Any | None:
    """What a type that can refuse makes of a value that arrived unencrypted, if it can."""
    for member in typing.get_args(hint) or (hint,):
        if typing.get_args(member):
            return _refusal(member)  # Annotated[Union[...], ...]
        refuse = getattr(member, "arrived_unencrypted", None)
        if refuse is not None:
            return refuse(UNENCRYPTED_PROBLEM)
    return None


def data_converter(codec: EncryptionCodec | None) -> DataConverter:
    """Pydantic payloads, encoded by `codec`, refused if unencrypted where it encrypts."""
    encrypts = codec is not None and codec.encrypts
    return DataConverter(
        payload_converter_class=EncryptedOnlyPayloadConverter if encrypts else SagaPayloadConverter,
        payload_codec=codec,
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
