"""Signing of messages and stored specs: HMAC-SHA256 over a domain tag and the exact
unsigned bytes, carried as the last entry of the msgpack map.

Two forms. A bare secret (``DIAGNOSE_SECRET=SECRET``) signs with a last ``"sig"`` entry,
the 32-byte MAC. Named keys (``DIAGNOSE_SECRET=KEYID:SECRET,...``) sign with a last
``"sigs"`` entry, a list of 1 to MAX_SIGNATURES signatures ``[KEYID, MAC]`` or
``[KEYID, MAC, AT]``: each names its key, and its MAC also covers the key id and, for an
approval, AT (unix milliseconds, the moment the spec's lifespan starts from). Several
signatures sign the same bytes: that is how a second person approves a spec.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from diagnose_redis.exceptions import UnknownKey, WireError
from diagnose_redis.protocol.keyring import KEY_ID_PATTERN

__all__ = (
    "EVENT_DOMAIN",
    "MAX_SIGNATURES",
    "SIG_LEN",
    "Signature",
    "Signed",
    "check_signature",
    "keyed_trailer",
    "parse_signatures",
    "secret_bytes",
    "sign",
    "sign_keyed",
    "spec_domain",
    "verify",
)

_SIG_TRAILER = b"\xa3sig\xc4\x20"
SIG_LEN = len(_SIG_TRAILER) + 32
EVENT_DOMAIN = b"diagnose-event\x00"
_SPEC_DOMAIN = b"diagnose-spec\x00"
# A named key's MAC covers this first: it can never equal a bare secret's MAC of any bytes.
_KEYED = b"diagnose-keyed\x00"
#: A message carries at most this many signatures; more is malformed, never verified.
MAX_SIGNATURES = 4
_MAX_AT = 2**53


def spec_domain(spec_id: str) -> bytes:
    """Return the domain tag of the stored spec spec_id (a signature is for one id only)."""
    return _SPEC_DOMAIN + spec_id.encode() + b"\x00"


def secret_bytes(secret: str | bytes | None) -> bytes | None:
    """Return a secret as bytes, None (or empty) meaning unsigned."""
    if not secret:
        return None
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _mac(secret: bytes, domain: bytes, body: bytes) -> bytes:
    return hmac.digest(secret, domain + body, "sha256")


def sign(body: bytes, secret: bytes, domain: bytes) -> bytes:
    """Return the packed map body with a last ``"sig"`` entry signing it (a bare secret)."""
    return bytes([body[0] + 1]) + body[1:] + _SIG_TRAILER + _mac(secret, domain, body)


def check_signature(raw: bytes, sig: object, secret: bytes, domain: bytes) -> None:
    """Raise WireError unless sig, the ``"sig"`` entry decoded from raw, signs raw."""
    body, mac = _bare_body(raw, sig)
    if not hmac.compare_digest(_mac(secret, domain, body), mac):
        raise WireError("forged", "message signature does not match")


def _bare_body(raw: bytes, sig: object) -> tuple[bytes, bytes]:
    """Return the bytes a bare ``"sig"`` entry signs, and its MAC."""
    if not (
        isinstance(sig, bytes)
        and 0x81 <= raw[0] <= 0x8F
        and len(raw) > SIG_LEN
        and raw[-SIG_LEN:] == _SIG_TRAILER + sig
    ):
        raise WireError("forged", "message signature is misplaced or malformed")
    return bytes([raw[0] - 1]) + raw[1:-SIG_LEN], sig


@dataclass(frozen=True)
class Signature:
    """One named key's signature: its key id, MAC, and the approval time it binds (or None)."""

    key_id: str
    mac: bytes = field(repr=False)
    at: int | None = None

    def entry(self) -> list[Any]:
        """Return the signature as the ``"sigs"`` list holds it."""
        return [self.key_id, self.mac] if self.at is None else [self.key_id, self.mac, self.at]


def _keyed_mac(secret: bytes, domain: bytes, key_id: str, at: int | None, body: bytes) -> bytes:
    when = b"" if at is None else b"@" + str(at).encode()
    return _mac(secret, _KEYED + domain + key_id.encode() + b"\x00" + when + b"\x00", body)


def sign_keyed(
    body: bytes, key_id: str, secret: bytes, domain: bytes, at: int | None = None
) -> Signature:
    """Return the signature of a named key over body (a packed map without signatures)."""
    return Signature(key_id, _keyed_mac(secret, domain, key_id, at, body), at)


def keyed_trailer(signatures: Iterable[Signature]) -> bytes:
    """Return the packed last entry ``"sigs": [...]`` that carries signatures."""
    entries = [s.entry() for s in signatures]
    return msgpack.packb("sigs") + msgpack.packb(entries, use_bin_type=True)


def parse_signatures(value: object) -> list[Signature]:
    """Read a ``"sigs"`` entry as decoded; raise WireError (malformed) unless it is sound."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SIGNATURES:
        raise WireError(
            "malformed", f"signatures must be a list of 1 to {MAX_SIGNATURES} [key id, MAC]"
        )
    found = []
    for entry in value:
        if not isinstance(entry, list) or len(entry) not in (2, 3):
            raise WireError("malformed", "a signature is not [key id, MAC] or [key id, MAC, at]")
        key_id, mac = entry[0], entry[1]
        at = entry[2] if len(entry) == 3 else None
        if not isinstance(key_id, str) or not KEY_ID_PATTERN.match(key_id):
            raise WireError("malformed", f"a signature names no valid key id: {key_id!r:.40}")
        if not isinstance(mac, bytes) or len(mac) != 32:
            raise WireError("malformed", f"the signature of key {key_id!r} is not 32 bytes")
        if at is not None and (isinstance(at, bool) or not isinstance(at, int) or
                               not 0 <= at < _MAX_AT):  # fmt: skip
            raise WireError("malformed", f"the signature of key {key_id!r} has a bad time")
        found.append(Signature(key_id, mac, at))
    return found


def keyed_body(raw: bytes, signatures: list[Signature]) -> bytes:
    """Return the bytes the ``"sigs"`` entry of raw signs: raw without that last entry."""
    trailer = keyed_trailer(signatures)
    if not (0x81 <= raw[0] <= 0x8F and len(raw) > len(trailer) and raw.endswith(trailer)):
        raise WireError("malformed", "message signatures are misplaced or malformed")
    return bytes([raw[0] - 1]) + raw[1 : -len(trailer)]


@dataclass(frozen=True)
class Signed:
    """Who verifiably signed some bytes: the key ids, and the latest approval time bound."""

    key_ids: frozenset[str]
    at: int | None = None


def verify(
    keys: Any, signatures: list[Signature], body: bytes, domain: bytes, holder: str
) -> Signed:
    """Check signatures over body with the keys of a Keyring; return the key ids verified.

    A signature by a key held that does not match is a forgery (WireError ``forged``);
    signatures by keys not held are set aside, and if none is left, UnknownKey names them.
    A bare secret held verifies a signature of any key id (it may be that key's secret).
    """
    verified: set[str] = set()
    unknown: list[str] = []
    at: int | None = None
    for signature in signatures:
        key = keys.get(signature.key_id)
        secret = key.secret if key is not None else keys.bare_secret
        if secret is None:
            unknown.append(signature.key_id)
            continue
        expected = _keyed_mac(secret, domain, signature.key_id, signature.at, body)
        if hmac.compare_digest(expected, signature.mac):
            verified.add(signature.key_id)
            if signature.at is not None and (at is None or signature.at > at):
                at = signature.at
        elif key is not None:
            raise WireError("forged", f"the signature of key {signature.key_id!r} does not match")
        else:
            unknown.append(signature.key_id)
    if not verified:
        raise UnknownKey(sorted(set(unknown)), holder)
    return Signed(frozenset(verified), at)


def verify_bare(keys: Any, raw: bytes, sig: object, domain: bytes) -> Signed:
    """Check a bare ``"sig"`` entry against every key held; return the one that signed."""
    body, mac = _bare_body(raw, sig)
    for key in keys.keys:
        if hmac.compare_digest(_mac(key.secret, domain, body), mac):
            return Signed(frozenset({key.key_id}))
    raise WireError("forged", "message signature does not match")
