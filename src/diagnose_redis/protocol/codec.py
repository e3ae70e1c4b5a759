"""The codec of specs and events: sealed msgpack maps of bounded size and depth, signed when
a secret is given; decoding checks shape, size, depth and signature before anything else.

A put event carries the spec's bytes exactly as stored (the packed map is the same at any
depth), and with named keys the spec's own signatures (``spec_sigs``) besides the event's:
so a worker checks the very signatures the stored spec has, an approval's among them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from diagnose.clock import to_utc
from diagnose_redis.exceptions import UnknownKey, WireError
from diagnose_redis.protocol.approval import APPROVAL_WINDOW_SECONDS
from diagnose_redis.protocol.keyring import Keyring, keyring
from diagnose_redis.protocol.keys import SPEC_ID_PATTERN
from diagnose_redis.protocol.signing import (
    EVENT_DOMAIN,
    Signature,
    Signed,
    keyed_body,
    keyed_trailer,
    parse_signatures,
    sign,
    sign_keyed,
    spec_domain,
    verify,
    verify_bare,
)

__all__ = (
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING",
    "OPS",
    "Opened",
    "SealedSpec",
    "countersign",
    "decode_event",
    "decode_spec",
    "encode_event",
    "encode_put",
    "encode_spec",
    "open_event",
    "open_spec",
    "seal_spec",
    "unsealed_spec",
    "unverified_put",
    "unverified_spec",
)

MAX_MESSAGE_BYTES = 64 * 1024
# A spec is a few levels deep (event, spec, instrument, custom, a tag map); msgpack itself
# accepts 1024, deep enough for the code that compares and describes specs to recurse out.
MAX_NESTING = 16
OPS = ("put", "delete", "version")
_MAX_ENTRIES = 14
# An approval may be stamped a little before the spec's lastmodified (clocks differ).
_CLOCK_SKEW_MS = 5 * 60 * 1000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)

Secret = str | bytes | Keyring | None


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, datetime=True)


def _sealed(body: bytes, ring: Keyring | None, domain: bytes) -> bytes:
    """Return body (a packed map) signed by ring's first key, or as it is without a ring."""
    if ring is None:
        sealed = body
    elif ring.named:
        signer = ring.signer
        sealed = _with_signatures(body, [sign_keyed(body, signer.key_id, signer.secret, domain)])
    else:
        sealed = sign(body, ring.signer.secret, domain)
    if len(sealed) > MAX_MESSAGE_BYTES:
        raise WireError("oversized", f"message of {len(sealed)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return sealed


def _seal(obj: Mapping[str, Any], secret: Secret, domain: bytes) -> bytes:
    """Pack a map within the limits and sign it with secret's first key (or not, without)."""
    _check_limits(obj)
    return _sealed(_pack(obj), keyring(secret), domain)


def _with_signatures(body: bytes, signatures: list[Signature]) -> bytes:
    return bytes([body[0] + 1]) + body[1:] + keyed_trailer(signatures)


def _check_limits(obj: Mapping[str, Any]) -> None:
    if len(obj) > _MAX_ENTRIES:
        raise WireError("malformed", f"a message holds at most {_MAX_ENTRIES} fields")
    if _too_deep(obj):
        raise WireError("malformed", f"a message nests maps or arrays at most {MAX_NESTING} deep")


def _unpack(raw: bytes | str) -> tuple[bytes, dict[str, Any]]:
    if not isinstance(raw, _BYTES):
        raise WireError("malformed", f"message is {type(raw).__name__}, not bytes")
    raw = bytes(raw)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise WireError("oversized", f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        obj = msgpack.unpackb(raw, raw=False, timestamp=3, strict_map_key=True)
    except Exception as exc:
        raise WireError("malformed", f"not msgpack: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("malformed", f"message is a msgpack {type(obj).__name__}, not a map")
    if _too_deep(obj):
        raise WireError("malformed", f"message nests maps or arrays deeper than {MAX_NESTING}")
    return raw, obj


def _open(
    raw: bytes | str, ring: Keyring | None, domain: bytes, holder: str
) -> tuple[bytes, dict[str, Any], Signed | None]:
    """Decode raw and check its signature with ring; return the bytes, the map without its
    signature entry, and who signed it (None without a ring: nothing is checked)."""
    raw, obj = _unpack(raw)
    sig = obj.pop("sig", None)
    sigs = obj.pop("sigs", None)
    if ring is None:
        return raw, obj, None
    if sig is not None and sigs is not None:
        raise WireError("malformed", "message has both a bare and a named signature")
    if sig is None and sigs is None:
        raise WireError("unsigned", "message is not signed")
    if sig is not None:
        return raw, obj, verify_bare(ring, raw, sig, domain)
    signatures = parse_signatures(sigs)
    try:
        return raw, obj, verify(ring, signatures, keyed_body(raw, signatures), domain, holder)
    except UnknownKey as exc:
        exc.body = obj
        raise


_NESTS = (dict, list)
# Tuples, not unions: ``int | float`` would make a new union at every message.
_BYTES = (bytes, bytearray, memoryview)
_LIFESPAN = (int, float, type(None))


def _too_deep(obj: object) -> bool:
    """Tell whether obj nests maps and arrays deeper than MAX_NESTING (without recursing)."""
    # The maps and arrays at each depth in turn (the values they hold are not kept).
    level = [obj] if isinstance(obj, _NESTS) else []
    for _ in range(MAX_NESTING):
        if not level:
            return False
        below = []
        for item in level:
            for value in item.values() if isinstance(item, dict) else item:
                if isinstance(value, _NESTS):
                    below.append(value)
        level = below
    return bool(level)


def _spec_body(spec: Mapping[str, Any]) -> dict[str, Any]:
    body = {key: value for key, value in spec.items() if key != "applied"}
    lastmodified = body.get("lastmodified")
    if isinstance(lastmodified, _dt.datetime):
        body["lastmodified"] = to_utc(lastmodified)
    return body


def _check_spec_shape(spec: object) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise WireError("malformed", f"spec is a {type(spec).__name__}, not a map")
    if not isinstance(spec.get("target"), str):
        raise WireError("malformed", "spec lacks a string target")
    if not isinstance(spec.get("instrument"), dict):
        raise WireError("malformed", "spec lacks an instrument map")
    if not isinstance(spec.get("lastmodified"), _dt.datetime):
        raise WireError("malformed", "spec lacks a lastmodified timestamp")
    lifespan = spec.get("lifespan")
    if isinstance(lifespan, bool) or not isinstance(lifespan, _LIFESPAN):
        raise WireError("malformed", "spec lifespan is not a number or nil")
    if "select" in spec:
        from diagnose import SpecError
        from diagnose.spec import validate_select

        try:
            spec["select"] = validate_select(spec["select"])
        except SpecError as exc:
            raise WireError("malformed", f"spec {exc}") from None
        if spec["select"] is None:
            del spec["select"]
    spec["applied"] = {}
    return spec


@dataclass(frozen=True)
class SealedSpec:
    """A spec as stored: its packed map (the bytes every signature signs) and signatures.

    ``bare`` holds a bare secret's MAC; ``signatures`` the named keys' (an approval adds one).
    """

    spec_id: str
    body: bytes
    signatures: tuple[Signature, ...] = ()
    bare: bytes | None = None

    @property
    def blob(self) -> bytes:
        """Return the bytes stored in ``P:spec:ID``."""
        if self.signatures:
            return _with_signatures(self.body, list(self.signatures))
        if self.bare is not None:
            return (
                bytes([self.body[0] + 1]) + self.body[1:] + msgpack.packb("sig") + _pack(self.bare)
            )
        return self.body

    @property
    def key_ids(self) -> list[str]:
        """The key ids of the signatures, in order (unverified: as the spec claims)."""
        return [s.key_id for s in self.signatures]


def seal_spec(spec_id: str, spec: Mapping[str, Any], secret: Secret = None) -> SealedSpec:
    """Encode a spec for its ``P:spec:ID`` key, without ``applied``, signed by the first key
    if a secret is given."""
    body = _spec_body(spec)
    _check_limits(body)
    if _too_deep({"spec": body}):
        # Its put event holds it one level down: refused here, before anything is stored.
        raise WireError("malformed", f"a spec nests maps or arrays at most {MAX_NESTING - 1} deep")
    packed = _pack(body)
    ring = keyring(secret)
    domain = spec_domain(spec_id)
    if ring is None:
        sealed = SealedSpec(spec_id, packed)
    elif ring.named:
        signer = ring.signer
        sealed = SealedSpec(
            spec_id, packed, (sign_keyed(packed, signer.key_id, signer.secret, domain),)
        )
    else:
        signed = sign(packed, ring.signer.secret, domain)
        sealed = SealedSpec(spec_id, packed, bare=signed[-32:])
    size = len(sealed.blob)
    if size > MAX_MESSAGE_BYTES:
        raise WireError("oversized", f"message of {size} bytes exceeds {MAX_MESSAGE_BYTES}")
    return sealed


def encode_spec(spec_id: str, spec: Mapping[str, Any], secret: Secret = None) -> bytes:
    """Encode a spec for its ``P:spec:ID`` key, without ``applied``, signed if a secret is given."""
    return seal_spec(spec_id, spec, secret).blob


def unsealed_spec(spec_id: str, raw: bytes | str) -> tuple[dict[str, Any], SealedSpec]:
    """Read a stored spec without verifying it: its map (shape checked) and its parts.

    For an approver, who signs what they read; the workers verify every signature."""
    raw, obj = _unpack(raw)
    sig = obj.pop("sig", None)
    sigs = obj.pop("sigs", None)
    if sig is not None and sigs is not None:
        raise WireError("malformed", "message has both a bare and a named signature")
    if sigs is not None:
        signatures = parse_signatures(sigs)
        sealed = SealedSpec(spec_id, keyed_body(raw, signatures), tuple(signatures))
    elif sig is not None:
        if not isinstance(sig, bytes) or len(sig) != 32 or not 0x81 <= raw[0] <= 0x8F:
            raise WireError("malformed", "message signature is misplaced or malformed")
        trailer = msgpack.packb("sig") + _pack(sig)
        if not raw.endswith(trailer):
            raise WireError("malformed", "message signature is misplaced or malformed")
        sealed = SealedSpec(spec_id, bytes([raw[0] - 1]) + raw[1 : -len(trailer)], bare=sig)
    else:
        sealed = SealedSpec(spec_id, raw)
    return _check_spec_shape(obj), sealed


def countersign(sealed: SealedSpec, secret: Secret, at: _dt.datetime) -> SealedSpec:
    """Return sealed with one more signature, by the first key of secret, which also binds
    at: the moment the spec's lifespan runs from (an approval's)."""
    ring = keyring(secret)
    if ring is None or not ring.named:
        raise WireError("unsigned", "approving needs a named key (KEYID:SECRET)")
    if not sealed.signatures:
        raise WireError("unsigned", "only a spec signed with a named key can be approved")
    signer = ring.signer
    at_ms = round((to_utc(at) - _EPOCH).total_seconds() * 1000)
    signature = sign_keyed(
        sealed.body, signer.key_id, signer.secret, spec_domain(sealed.spec_id), at_ms
    )
    return SealedSpec(sealed.spec_id, sealed.body, (*sealed.signatures, signature))


class Opened(NamedTuple):
    """A verified spec or event, and who signed the spec (for an event, its spec's).

    ``signers`` is empty when nothing was checked (no secret given). A tuple: one is made
    for every message a subscriber reads."""

    value: dict[str, Any]
    signers: frozenset[str] = frozenset()


def open_spec(
    spec_id: str, raw: bytes | str, secret: Secret = None, *, holder: str = "this process"
) -> Opened:
    """Decode and verify a stored spec (with an empty ``applied``; an approved one with its
    lastmodified at its approval); raise WireError if it is not sound."""
    _, obj, signed = _open(raw, keyring(secret), spec_domain(spec_id), holder)
    spec = _check_spec_shape(obj)
    return Opened(spec, _approved(spec, signed))


def decode_spec(spec_id: str, raw: bytes | str, secret: Secret = None) -> dict[str, Any]:
    """Decode a stored spec (with an empty ``applied``); raise WireError if it is not sound."""
    return open_spec(spec_id, raw, secret).value


def _approved(spec: dict[str, Any], signed: Signed | None) -> frozenset[str]:
    """Move a verified spec's lastmodified to the approval its signatures bind, if any;
    return the key ids that signed it."""
    if signed is None:
        return frozenset()
    if signed.at is not None:
        lastmodified = to_utc(spec["lastmodified"])
        at = _EPOCH + _dt.timedelta(milliseconds=signed.at)
        delay = (at - lastmodified).total_seconds()
        if not -_CLOCK_SKEW_MS / 1000 <= delay <= APPROVAL_WINDOW_SECONDS:
            raise WireError(
                "stale",
                f"approved {delay / 3600:.1f}h after it was published; an approval counts "
                f"within {APPROVAL_WINDOW_SECONDS // 3600}h",
            )
        spec["lastmodified"] = max(at, lastmodified)
    return signed.key_ids


def encode_event(
    op: str,
    spec_id: str,
    version: int,
    spec: Mapping[str, Any] | None = None,
    secret: Secret = None,
) -> bytes:
    """Encode one event for the ``P:events`` channel, signed if a secret is given."""
    if op not in OPS:
        raise WireError("malformed", f"op must be one of {', '.join(OPS)}, not {op!r}")
    if op != "put":
        return _event(op, spec_id, version, None, keyring(secret))
    if spec is None:
        raise WireError("malformed", "a put event needs a spec")
    return encode_put(version, seal_spec(spec_id, spec, secret), secret)


def encode_put(version: int, sealed: SealedSpec, secret: Secret = None) -> bytes:
    """Encode the put event of a sealed spec: its very bytes, and its named signatures."""
    return _event("put", sealed.spec_id, version, sealed, keyring(secret))


def _event(
    op: str, spec_id: str, version: int, sealed: SealedSpec | None, ring: Keyring | None
) -> bytes:
    # Written entry by entry so that the spec's bytes are the stored ones, byte for byte:
    # with no spec_sigs, exactly what packing the map {op, id, version, spec} gives.
    entries = [_pack("op") + _pack(op), _pack("id") + _pack(spec_id)]
    entries.append(_pack("version") + _pack(int(version)))
    if sealed is not None:
        entries.append(_pack("spec") + sealed.body)
        if ring is not None and ring.named and sealed.signatures:
            entries.append(_pack("spec_sigs") + _pack([s.entry() for s in sealed.signatures]))
    body = bytes([0x80 + len(entries)]) + b"".join(entries)
    return _sealed(body, ring, EVENT_DOMAIN)


def open_event(raw: bytes, secret: Secret = None, *, holder: str = "this process") -> Opened:
    """Decode and verify one event into ``{"op", "id", "version"[, "spec"]}``, with the key
    ids that signed its spec; raise WireError if it is unsound."""
    ring = keyring(secret)
    raw, event, signed = _open(raw, ring, EVENT_DOMAIN, holder)
    spec_sigs = event.pop("spec_sigs", None)
    op = event.get("op")
    if op not in OPS:
        raise WireError("malformed", f"event op is {op!r}, not one of {', '.join(OPS)}")
    version = event.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise WireError("malformed", f"event version is {version!r}, not a natural number")
    spec_id = event.get("id")
    if op == "version":
        spec_id = ""
    elif not isinstance(spec_id, str) or not SPEC_ID_PATTERN.match(spec_id):
        raise WireError("malformed", f"event id is {spec_id!r}, not a spec id")
    decoded: dict[str, Any] = {"op": op, "id": spec_id, "version": version}
    if op != "put":
        return Opened(decoded, frozenset() if signed is None else signed.key_ids)
    spec = decoded["spec"] = _check_spec_shape(event.get("spec"))
    if signed is not None and spec_sigs is not None:
        signatures = parse_signatures(spec_sigs)
        start, end = _value_span(raw, "spec")
        try:
            signed = verify(ring, signatures, raw[start:end], spec_domain(spec_id), holder)
        except UnknownKey as exc:
            exc.body = {**event, "spec": spec}
            raise
    elif signed is not None and signed.at is not None:
        raise WireError("malformed", "an event's own signature binds no approval time")
    return Opened(decoded, _approved(spec, signed))


def decode_event(raw: bytes, secret: Secret = None) -> dict[str, Any]:
    """Decode one event into ``{"op", "id", "version"[, "spec"]}``; raise WireError if unsound."""
    return open_event(raw, secret).value


def _value_span(raw: bytes, key: str) -> tuple[int, int]:
    """Return where the value of key lies in raw, a packed map already decoded once."""
    unpacker = msgpack.Unpacker(raw=False, timestamp=3, strict_map_key=True)
    unpacker.feed(raw)
    for _ in range(unpacker.read_map_header()):
        name = unpacker.unpack()
        start = unpacker.tell()
        unpacker.skip()
        if name == key:
            return start, unpacker.tell()
    raise WireError("malformed", f"message has no {key!r}")


def unverified_put(event: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """Return (id, spec) of what an unverified event claims to put, or None if it is not a
    sound put: to report what was refused, never to apply."""
    if not isinstance(event, Mapping) or event.get("op") != "put":
        return None
    spec_id = event.get("id")
    if not isinstance(spec_id, str) or not SPEC_ID_PATTERN.match(spec_id):
        return None
    spec = unverified_spec(event.get("spec"))
    return None if spec is None else (spec_id, spec)


def unverified_spec(spec: object) -> dict[str, Any] | None:
    """Return an unverified spec's map, shape checked, or None if it is not sound."""
    try:
        return _check_spec_shape(dict(spec) if isinstance(spec, Mapping) else spec)
    except WireError:
        return None
