"""Signing of messages and stored specs: HMAC-SHA256 over a domain tag and the exact
unsigned bytes, carried as a last ``"sig"`` entry of the msgpack map."""

from __future__ import annotations

import hashlib
import hmac

from diagnose_redis.exceptions import WireError

__all__ = ("EVENT_DOMAIN", "SIG_LEN", "check_signature", "secret_bytes", "sign", "spec_domain")

_SIG_TRAILER = b"\xa3sig\xc4\x20"
SIG_LEN = len(_SIG_TRAILER) + 32
EVENT_DOMAIN = b"diagnose-event\x00"
_SPEC_DOMAIN = b"diagnose-spec\x00"


def spec_domain(spec_id: str) -> bytes:
    """Return the domain tag of the stored spec spec_id (a signature is for one id only)."""
    return _SPEC_DOMAIN + spec_id.encode() + b"\x00"


def secret_bytes(secret: str | bytes | None) -> bytes | None:
    """Return a secret as bytes, None (or empty) meaning unsigned."""
    if not secret:
        return None
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _mac(secret: bytes, domain: bytes, body: bytes) -> bytes:
    return hmac.new(secret, domain + body, hashlib.sha256).digest()


def sign(body: bytes, secret: bytes, domain: bytes) -> bytes:
    """Return the packed map body with a last ``"sig"`` entry signing it."""
    return bytes([body[0] + 1]) + body[1:] + _SIG_TRAILER + _mac(secret, domain, body)


def check_signature(raw: bytes, sig: object, secret: bytes, domain: bytes) -> None:
    """Raise WireError unless sig, the ``"sig"`` entry decoded from raw, signs raw."""
    if not (
        isinstance(sig, bytes)
        and 0x81 <= raw[0] <= 0x8F
        and len(raw) > SIG_LEN
        and raw[-SIG_LEN:] == _SIG_TRAILER + sig
    ):
        raise WireError("forged", "message signature is misplaced or malformed")
    body = bytes([raw[0] - 1]) + raw[1:-SIG_LEN]
    if not hmac.compare_digest(_mac(secret, domain, body), sig):
        raise WireError("forged", "message signature does not match")
