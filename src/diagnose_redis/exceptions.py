"""Exceptions of diagnose_redis, in one module to avoid import loops."""

from __future__ import annotations

__all__ = ("BadURL", "DiagnoseRedisError", "SpecIdError", "UnsupportedURL", "WireError")


class DiagnoseRedisError(Exception):
    """Base of the errors diagnose_redis raises on purpose."""


class WireError(DiagnoseRedisError, ValueError):
    """A message or stored spec is undecodable, malformed, oversized, unsigned or forged."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SpecIdError(DiagnoseRedisError, ValueError):
    """A spec id the wire format does not allow (1-200 characters of ``A-Za-z0-9_.:-``)."""


class BadURL(DiagnoseRedisError, ValueError):
    """A Redis URL that cannot be parsed (the message never holds its password)."""


class UnsupportedURL(BadURL):
    """A Redis URL of a scheme this version does not know (``redis+foo://``)."""
