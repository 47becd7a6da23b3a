"""The payload codec: AES-GCM per payload, a key id in its metadata, keys that rotate."""

from __future__ import annotations

from typing import cast

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from domain.order import OrderInput, RefusedOrder
from domain.saga import Withdrawal
from infra.codec import (
    ARRIVED_UNENCRYPTED,
    ENCODING,
    KEY_ID,
    UNENCRYPTED_PROBLEM,
    DecryptionError,
    EncryptionCodec,
    UnencryptedPayload,
    data_converter,
)
from infra.keyring import Keyring, KeyringError, new_key_entry, parse
from infra.settings import Settings


def keyring(*ids: str, active: str | None = None) -> Keyring:
    keys = dict(parse([new_key_entry(key_id) for key_id in ids], "test"))
    return Keyring(keys=keys, active=active or ids[0])


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"order_id": "A1", "secret": 1}')


async def test_payload_is_encrypted_and_names_its_key() -> None:
    codec = EncryptionCodec(keyring("k1"))
    [sealed] = await codec.encode([PLAIN])
    assert dict(sealed.metadata) == {"encoding": ENCODING, KEY_ID: b"k1"}
    assert b"order_id" not in sealed.data and b"json" not in sealed.data
    assert await codec.decode([sealed]) == [PLAIN]
    [again] = await codec.encode([PLAIN])
    assert again.data != sealed.data, "a fresh nonce every time"


async def test_old_payload_decodes_after_rotation() -> None:
    old = keyring("k1")
    [written_before] = await EncryptionCodec(old).encode([PLAIN])
    rotated = Keyring(keys={**keyring("k2").keys, **old.keys}, active="k2")
    codec = EncryptionCodec(rotated)
    [written_after] = await codec.encode([PLAIN])
    assert written_after.metadata[KEY_ID] == b"k2"
    assert await codec.decode([written_before, written_after]) == [PLAIN, PLAIN]


async def test_unknown_key_and_tampering_are_refused() -> None:
    [sealed] = await EncryptionCodec(keyring("k1")).encode([PLAIN])
    with pytest.raises(DecryptionError, match="'k1', not in the keyring"):
        await EncryptionCodec(keyring("k2")).decode([sealed])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"k0"}, data=sealed.data)
    other = keyring("k1", "k0")
    with pytest.raises(DecryptionError, match="does not decrypt"):
        await EncryptionCodec(other).decode([relabelled])


async def test_unencrypted_payloads_pass_and_decode_only_mode() -> None:
    codec = EncryptionCodec(keyring("k1"), encrypt=False)
    assert await codec.encode([PLAIN]) == [PLAIN]
    assert await codec.decode([PLAIN]) == [PLAIN]


async def test_failure_messages_are_readable_and_their_details_encrypted() -> None:
    # The CLI and the Web UI show a failed saga's reason as it is; its details stay sealed.
    converter = data_converter(EncryptionCodec(keyring("k1")))
    failure = Failure()
    error = ApplicationError("charge_payment failed: card declined", {"who": "Ada"}, type="X")
    await converter.encode_failure(error, failure)
    assert failure.message == "charge_payment failed: card declined"
    assert not failure.HasField("encoded_attributes")
    [details] = failure.application_failure_info.details.payloads
    assert details.metadata["encoding"] == ENCODING
    assert "Ada" not in str(failure)
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and decoded.details == ({"who": "Ada"},)


async def test_an_unencrypted_saga_input_is_a_refusal_where_encryption_is_on() -> None:
    converter = data_converter(EncryptionCodec(keyring("k1")))
    [marked] = await converter.payload_codec.decode([PLAIN])  # type: ignore[union-attr]
    assert marked.metadata[ARRIVED_UNENCRYPTED] == b"1"
    # The saga's input type can refuse: the saga gets its refusal, with what to do.
    saga_input = cast(type, OrderInput)  # a union, as the saga's `run` declares it
    [refused] = converter.payload_converter.from_payloads([marked], [saga_input])
    assert refused == RefusedOrder.arrived_unencrypted(UNENCRYPTED_PROBLEM)
    assert "temporal workflow delete" in UNENCRYPTED_PROBLEM
    # Any other value is refused with an error (an update's argument, say).
    with pytest.raises(UnencryptedPayload, match="arrived unencrypted"):
        converter.payload_converter.from_payloads([marked], [Withdrawal])
    # Encrypted payloads convert as ever.
    [sealed] = await converter.payload_codec.encode([PLAIN])  # type: ignore[union-attr]
    [opened] = await converter.payload_codec.decode([sealed])  # type: ignore[union-attr]
    assert converter.payload_converter.from_payloads([opened], [dict]) == [
        {"order_id": "A1", "secret": 1}
    ]


async def test_a_decode_only_codec_lets_unencrypted_payloads_through() -> None:
    # While encryption rolls out (every process decodes before any encrypts), plain sagas run.
    converter = data_converter(EncryptionCodec(keyring("k1"), encrypt=False))
    [payload] = await converter.payload_codec.decode([PLAIN])  # type: ignore[union-attr]
    assert payload == PLAIN
    assert converter.payload_converter.from_payloads([payload], [dict]) == [
        {"order_id": "A1", "secret": 1}
    ]


def test_keyring_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEC_KEY_FILE", raising=False)
    entry = new_key_entry("k9")
    ring = Keyring.from_settings(Settings(codec_keys=f"{entry},{new_key_entry('k8')}"))
    assert ring is not None and ring.active == "k9" and set(ring.keys) == {"k9", "k8"}
    with pytest.raises(KeyringError, match="needs 32"):
        Keyring.from_settings(Settings(codec_keys="k1:AAAA"))
    with pytest.raises(KeyringError, match="no key 'k7'"):
        Keyring.from_settings(Settings(codec_keys=entry, codec_key_id="k7"))
