"""The codec of specs and events: sealed msgpack maps of bounded size and depth, signed when
a secret is given; decoding checks shape, size, depth and signature before anything else."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import msgpack

from diagnose.clock import to_utc
from diagnose_redis.exceptions import WireError
from diagnose_redis.protocol.keys import SPEC_ID_PATTERN
from diagnose_redis.protocol.signing import EVENT_DOMAIN, check_signature, sign, spec_domain

__all__ = (
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING",
    "OPS",
    "decode_event",
    "decode_spec",
    "encode_event",
    "encode_spec",
)

MAX_MESSAGE_BYTES = 64 * 1024
# A spec is a few levels deep (event, spec, instrument, custom, a tag map); msgpack itself
# accepts 1024, deep enough for the code that compares and describes specs to recurse out.
MAX_NESTING = 16
OPS = ("put", "delete", "version")
_MAX_ENTRIES = 14


def _pack(obj: Mapping[str, Any]) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, datetime=True)


def _seal(obj: Mapping[str, Any], secret: bytes | None, domain: bytes) -> bytes:
    if len(obj) > _MAX_ENTRIES:
        raise WireError("malformed", f"a message holds at most {_MAX_ENTRIES} fields")
    if _too_deep(obj):
        raise WireError("malformed", f"a message nests maps or arrays at most {MAX_NESTING} deep")
    body = _pack(obj)
    if secret is not None:
        body = sign(body, secret, domain)
    if len(body) > MAX_MESSAGE_BYTES:
        raise WireError("oversized", f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return body


def _open(raw: bytes | str, secret: bytes | None, domain: bytes) -> dict[str, Any]:
    if not isinstance(raw, bytes | bytearray | memoryview):
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
    sig = obj.pop("sig", None)
    if secret is None:
        return obj
    if sig is None:
        raise WireError("unsigned", "message is not signed")
    check_signature(raw, sig, secret, domain)
    return obj


_NESTS = (dict, list)


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
    if isinstance(lifespan, bool) or not isinstance(lifespan, int | float | None):
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


def encode_spec(spec_id: str, spec: Mapping[str, Any], secret: bytes | None = None) -> bytes:
    """Encode a spec for its ``P:spec:ID`` key, without ``applied``, signed if a secret is given."""
    body = _spec_body(spec)
    if _too_deep({"spec": body}):
        # Its put event holds it one level down: refused here, before anything is stored.
        raise WireError("malformed", f"a spec nests maps or arrays at most {MAX_NESTING - 1} deep")
    return _seal(body, secret, spec_domain(spec_id))


def decode_spec(spec_id: str, raw: bytes | str, secret: bytes | None = None) -> dict[str, Any]:
    """Decode a stored spec (with an empty ``applied``); raise WireError if it is not sound."""
    obj = _open(raw, secret, spec_domain(spec_id))
    return _check_spec_shape(obj)


def encode_event(
    op: str,
    spec_id: str,
    version: int,
    spec: Mapping[str, Any] | None = None,
    secret: bytes | None = None,
) -> bytes:
    """Encode one event for the ``P:events`` channel, signed if a secret is given."""
    if op not in OPS:
        raise WireError("malformed", f"op must be one of {', '.join(OPS)}, not {op!r}")
    event: dict[str, Any] = {"op": op, "id": spec_id, "version": int(version)}
    if op == "put":
        if spec is None:
            raise WireError("malformed", "a put event needs a spec")
        event["spec"] = _spec_body(spec)
    return _seal(event, secret, EVENT_DOMAIN)


def decode_event(raw: bytes, secret: bytes | None = None) -> dict[str, Any]:
    """Decode one event into ``{"op", "id", "version"[, "spec"]}``; raise WireError if unsound."""
    event = _open(raw, secret, EVENT_DOMAIN)
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
    if op == "put":
        decoded["spec"] = _check_spec_shape(event.get("spec"))
    return decoded
