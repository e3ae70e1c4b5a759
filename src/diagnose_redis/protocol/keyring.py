"""The signing keys a process holds: ``DIAGNOSE_SECRET`` read into a Keyring.

``KEYID:SECRET,KEYID:SECRET`` names several keys: the first signs, any verifies. Text with
no ``KEYID:`` item is one bare secret, used exactly as before key ids existed. Secrets never
appear in a repr, a message or an error: only key ids do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from diagnose_redis.exceptions import KeyringError

__all__ = ("KEY_ID_PATTERN", "MAX_KEYS", "Key", "Keyring", "keyring")

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_KEYED_ITEM = re.compile(r"^([A-Za-z0-9_.-]{1,32}):(.*)$", re.DOTALL)
#: A keyring holds at most this many keys (a rotation needs two or three).
MAX_KEYS = 16


@dataclass(frozen=True)
class Key:
    """One signing key: its id (``""`` for a bare secret) and its secret, never shown."""

    key_id: str
    secret: bytes = field(repr=False)


class Keyring:
    """The keys of one process, in order: the first signs, every one verifies."""

    def __init__(self, keys: Iterable[Key]) -> None:
        self.keys = tuple(keys)
        if not self.keys:
            raise KeyringError("a keyring needs at least one key")
        self._by_id = {key.key_id: key for key in self.keys if key.key_id}

    @classmethod
    def bare(cls, secret: bytes) -> Keyring:
        """Return the keyring of one bare secret (no key id)."""
        return cls([Key("", secret)])

    @property
    def signer(self) -> Key:
        """The key that signs: the first."""
        return self.keys[0]

    @property
    def named(self) -> bool:
        """True when the keys have ids (signatures name them), False for a bare secret."""
        return bool(self.signer.key_id)

    @property
    def ids(self) -> list[str]:
        """The key ids held, in order (none for a bare secret)."""
        return [key.key_id for key in self.keys if key.key_id]

    @property
    def bare_secret(self) -> bytes | None:
        """The bare secret, if this keyring is one."""
        return None if self.named else self.signer.secret

    def get(self, key_id: str) -> Key | None:
        """Return the key of key_id, or None if it is not held."""
        return self._by_id.get(key_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyring) and self.keys == other.keys

    def __hash__(self) -> int:
        return hash(self.keys)

    def __repr__(self) -> str:
        if not self.named:
            return "Keyring(<bare secret>)"
        return f"Keyring({', '.join(self.ids)})"


def keyring(secret: str | bytes | Keyring | None) -> Keyring | None:
    """Read a secret setting into a Keyring; None (or empty) means unsigned.

    Bytes are one bare secret. Text is a list of ``KEYID:SECRET`` items separated by commas
    as soon as one item starts with a key id and a colon (then every item must); otherwise it
    is one bare secret, commas and all. Raise KeyringError (naming key ids and item numbers,
    never a secret) when a list cannot be read.
    """
    if secret is None or isinstance(secret, Keyring):
        return secret
    if isinstance(secret, bytes | bytearray):
        return Keyring.bare(bytes(secret)) if secret else None
    if not secret:
        return None
    items = [item.strip() for item in secret.split(",")]
    if not any(_KEYED_ITEM.match(item) for item in items):
        return Keyring.bare(secret.encode())
    keys: list[Key] = []
    for number, item in enumerate(items, 1):
        matched = _KEYED_ITEM.match(item)
        if matched is None:
            raise KeyringError(
                f"item {number} of the key list is not KEYID:SECRET (a key id is 1-32 "
                "letters, digits and _.-)"
            )
        key_id, text = matched.groups()
        if not text:
            raise KeyringError(f"key {key_id!r} has an empty secret")
        if any(key.key_id == key_id for key in keys):
            raise KeyringError(f"key {key_id!r} is listed twice")
        keys.append(Key(key_id, text.encode()))
    if len(keys) > MAX_KEYS:
        raise KeyringError(f"{len(keys)} keys listed; at most {MAX_KEYS}")
    return Keyring(keys)
