"""Exceptions of diagnose_redis, in one module to avoid import loops."""

from __future__ import annotations

from typing import Any

__all__ = (
    "ApprovalError",
    "BadURL",
    "DiagnoseRedisError",
    "KeyringError",
    "SpecIdError",
    "UnknownKey",
    "UnsupportedURL",
    "WireError",
)


class DiagnoseRedisError(Exception):
    """Base of the errors diagnose_redis raises on purpose."""


class WireError(DiagnoseRedisError, ValueError):
    """A message or stored spec is undecodable, malformed, oversized, unsigned or forged."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnknownKey(WireError):
    """A message or stored spec signed only by keys that are not held here; names them.

    ``body``, once the codec sets it, is the message's map as decoded, unverified: what
    it claims to be, to tell a person about, never to apply."""

    def __init__(self, key_ids: list[str], holder: str = "this process") -> None:
        self.key_ids = list(key_ids)
        self.body: dict[str, Any] | None = None
        named = ", ".join(repr(k) for k in self.key_ids) or "no key"
        noun = "key" if len(self.key_ids) <= 1 else "keys"
        super().__init__("unknown-key", f"signed with {noun} {named}, which {holder} does not hold")


class KeyringError(DiagnoseRedisError, ValueError):
    """``DIAGNOSE_SECRET`` (or ``--secret``) cannot be read; the message never holds a secret."""


class ApprovalError(DiagnoseRedisError):
    """A spec cannot be approved: none pending, the approver's key signed it already, ..."""


class SpecIdError(DiagnoseRedisError, ValueError):
    """A spec id the wire format does not allow (1-200 characters of ``A-Za-z0-9_.:-``)."""


class BadURL(DiagnoseRedisError, ValueError):
    """A Redis URL that cannot be parsed (the message never holds its password)."""


class UnsupportedURL(BadURL):
    """A Redis URL of a scheme this version does not know (``redis+foo://``)."""
