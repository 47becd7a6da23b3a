"""The payload encryption keys: named AES-256 keys, one of them encrypting new payloads.

Keys come from a file (`CODEC_KEY_FILE`) or the environment (`CODEC_KEYS`), never from the
repository. Both hold `KEY_ID:BASE64_KEY` entries (a file one a line, `#` comments allowed; the
variable comma-separated). To rotate, add a new key first and keep the old ones: new payloads
are encrypted with the first key (or `CODEC_KEY_ID`), and every payload names the key that
encrypted it, so old histories still decode.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings

KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class KeyringError(ValueError):
    """A key or the keyring's configuration is unusable; the message names where."""


@dataclass(frozen=True)
class Keyring:
    """Named keys and the one new payloads are encrypted with.

    Attributes:
        keys: Key id to 32-byte AES key.
        active: The id of the key that encrypts new payloads.
    """

    keys: dict[str, bytes]
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise KeyringError(f"CODEC_KEY_ID: no key {self.active!r} in the keyring")

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring | None:
        """The keyring the settings configure, or None if they configure no key."""
        entries: list[tuple[str, bytes]] = []
        if settings.codec_key_file:
            text = settings.codec_key_file.read_text()
            entries += parse(text.splitlines(), f"CODEC_KEY_FILE {settings.codec_key_file}")
        if settings.codec_keys:
            entries += parse(settings.codec_keys.get_secret_value().split(","), "CODEC_KEYS")
        if not entries:
            return None
        keys: dict[str, bytes] = {}
        for key_id, key in entries:
            if keys.setdefault(key_id, key) != key:
                raise KeyringError(f"CODEC_KEYS: two different keys are named {key_id!r}")
        return cls(keys=keys, active=settings.codec_key_id or entries[0][0])


def parse(lines: Iterable[str], source: str) -> list[tuple[str, bytes]]:
    """`KEY_ID:BASE64_KEY` entries, in order; blank entries and `#` comments skipped."""
    entries = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, encoded = line.partition(":")
        where = f"{source}, entry {number}"
        if not sep or not _KEY_ID.match(key_id.strip()):
            raise KeyringError(f"{where}: expected KEY_ID:BASE64_KEY (id of A-Z a-z 0-9 . _ -)")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error as err:
            raise KeyringError(f"{where}: key {key_id.strip()!r} is not base64") from err
        if len(key) != KEY_BYTES:
            raise KeyringError(
                f"{where}: key {key_id.strip()!r} has {len(key)} bytes; AES-256 needs {KEY_BYTES}"
            )
        entries.append((key_id.strip(), key))
    return entries


def new_key_entry(key_id: str) -> str:
    """A `KEY_ID:BASE64_KEY` entry with a fresh random key."""
    if not _KEY_ID.match(key_id):
        raise KeyringError(f"key id {key_id!r}: use 1 to 64 of A-Z a-z 0-9 . _ -")
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def ensure_key_file(path: Path, key_id: str = "k1") -> Path:
    """Create a keyring file with one fresh key at `path`, unless one is there already.

    The file is readable by its owner only.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"# payload encryption keys, newest first\n{new_key_entry(key_id)}\n")
    return path
