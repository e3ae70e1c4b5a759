"""The wire format shared by publishers and subscribers: key names, codec, signing, limits.

Redis layout, with ``P`` the prefix:

- ``P:spec:ID`` (string): the spec without ``applied``, a sealed msgpack map; its TTL is the
  remaining lifespan. Its optional ``select`` (label name -> glob or list of globs) says which
  processes apply it (``_labels.py``); a malformed one makes the spec malformed.
- ``P:ids`` (set): every spec id published and not yet removed, so a sweep can find the ids
  whose key has expired.
- ``P:version`` (string): an integer bumped by one for every put and delete.
- ``P:events`` (channel): sealed msgpack maps ``{"op", "id", "version"[, "spec"]}``. Ops:
  ``"put"`` (with ``spec``), ``"delete"``, and ``"version"`` (``id`` is ``""``; a no-op that
  re-announces the current version so a subscriber that missed a message sees the gap).
- ``P:status:PROCESS_ID`` (hash): spec id -> JSON ``{"lm", "err", "at"}``, and ``_process`` ->
  JSON ``{"host", "pid", "started", "version", "library", "labels", "dropped", ...}`` where
  ``version`` is the last spec version the process has applied and ``labels`` its labels
  (with ``process`` and ``host``).
- ``P:processes`` (sorted set): process id scored by its last heartbeat, unix seconds.
- ``P:claim:PROCESS_ID`` (string): the token of the live process that holds this id; it
  expires unless heartbeats refresh it, so no two live processes ever report under one id.
- ``P:output`` (stream): what the instruments of specs emitted, one entry each, capped near
  ``DIAGNOSE_OUTPUT_MAXLEN`` entries; string fields ``process``, ``spec``, ``name``,
  ``type`` (the instrument's, or ``error``), ``value`` (text; JSON for snapshots), ``tags``
  (a JSON object) and ``at`` (ISO-8601 UTC, when it was emitted).

Sealing: a message is a msgpack map (at most 14 entries, so a one-byte fixmap header). Signed,
it gets one more entry, last: ``"sig"`` -> HMAC-SHA256 (32 bytes, msgpack bin) over a domain
tag and the unsigned encoding of the map. An unsigned message has no ``"sig"`` key, so the two
are told apart by decoding alone; the signature covers the exact bytes, not a re-encoding.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

import msgpack

from diagnose._time import to_utc

from ._connect import client_name
from .exceptions import SpecIdError, WireError

__all__ = (
    "HEARTBEAT_SECONDS",
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING",
    "OPS",
    "OUTPUT_FIELDS",
    "OUTPUT_MAXLEN",
    "PROCESS_FIELD",
    "SPEC_ID_PATTERN",
    "STATUS_TTL_SECONDS",
    "Keys",
    "WireError",
    "check_spec_id",
    "cluster_prefix",
    "decode_event",
    "decode_output",
    "decode_spec",
    "COUNTS",
    "decode_status_field",
    "with_counts",
    "encode_event",
    "expired_channel",
    "encode_output",
    "encode_spec",
    "output_maxlen",
    "applied_mark",
    "encode_status_field",
    "secret_bytes",
)

MAX_MESSAGE_BYTES = 64 * 1024
# A spec is a few levels deep (event, spec, instrument, custom, a tag map); msgpack itself
# accepts 1024, deep enough for the code that compares and describes specs to recurse out.
MAX_NESTING = 16
HEARTBEAT_SECONDS = 5.0
STATUS_TTL_SECONDS = 3 * HEARTBEAT_SECONDS
PROCESS_FIELD = "_process"
OPS = ("put", "delete", "version")
SPEC_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
#: The fields of an output stream entry, in the order written.
OUTPUT_FIELDS = ("process", "spec", "name", "type", "value", "tags", "at")
#: Entries the output stream keeps (about: XADD MAXLEN ~), unless DIAGNOSE_OUTPUT_MAXLEN says.
OUTPUT_MAXLEN = 10_000

_MAX_ENTRIES = 14
_SIG_TRAILER = b"\xa3sig\xc4\x20"
_SIG_LEN = len(_SIG_TRAILER) + 32
_EVENT_DOMAIN = b"diagnose-event\x00"
_SPEC_DOMAIN = b"diagnose-spec\x00"


def cluster_prefix(prefix: str) -> str:
    """Return prefix as a Redis Cluster hash tag (``{diagnose}``), unless it holds one."""
    head, brace, tail = prefix.partition("{")
    if brace and "}" in tail and tail.index("}") > 0:
        return prefix
    return "{" + prefix + "}"


class Keys:
    """Name the Redis keys and channels under one prefix.

    With cluster set, the prefix is made a hash tag (see cluster_prefix) so that every key and
    the channel share one slot, and events travel by sharded pub/sub (``sharded``).
    """

    def __init__(self, prefix: str = "diagnose", *, cluster: bool = False) -> None:
        self.sharded = cluster
        prefix = cluster_prefix(prefix) if cluster else prefix
        self.prefix = prefix
        self.events = f"{prefix}:events"
        self.processes = f"{prefix}:processes"
        self.version = f"{prefix}:version"
        self.ids = f"{prefix}:ids"
        self.spec_prefix = f"{prefix}:spec:"
        self.status_prefix = f"{prefix}:status:"
        self.claim_prefix = f"{prefix}:claim:"
        self.output = f"{prefix}:output"

    def spec(self, spec_id: str) -> str:
        """Return the key of one spec."""
        return self.spec_prefix + spec_id

    def status(self, process_id: str) -> str:
        """Return the status hash key of one process."""
        return self.status_prefix + process_id

    def claim(self, process_id: str) -> str:
        """Return the key that holds the claim on a process id."""
        return self.claim_prefix + process_id

    def connection_name(self, process_id: str) -> str:
        """Return the name a process's subscriber gives its connections (CLIENT SETNAME)."""
        return client_name(f"{self.prefix}:{process_id}")

    def spec_id(self, key: str | bytes) -> str | None:
        """Return the spec id a key names, or None if it is not a spec key."""
        return _after(self.spec_prefix, key)

    def process_id(self, key: str | bytes) -> str | None:
        """Return the process id a status key names, or None if it is not a status key."""
        return _after(self.status_prefix, key)

    def __repr__(self) -> str:
        cluster = ", cluster=True" if self.sharded else ""
        return f"Keys({self.prefix!r}{cluster})"


def expired_channel(db: int) -> str:
    """Return the channel on which Redis announces keys of database db that expired."""
    return f"__keyevent@{db}__:expired"


def _after(prefix: str, key: str | bytes) -> str | None:
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    return key[len(prefix) :] if key.startswith(prefix) else None


def secret_bytes(secret: str | bytes | None) -> bytes | None:
    """Return a secret as bytes, None (or empty) meaning unsigned."""
    if not secret:
        return None
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def check_spec_id(spec_id: object) -> str:
    """Return a valid spec id or raise SpecIdError (a ValueError) naming the problem."""
    if not isinstance(spec_id, str) or not SPEC_ID_PATTERN.match(spec_id):
        raise SpecIdError(
            f"spec id must be 1-200 characters of letters, digits and _.:- , not {spec_id!r}"
        )
    return spec_id


def _pack(obj: Mapping[str, Any]) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, datetime=True)


def _mac(secret: bytes, domain: bytes, body: bytes) -> bytes:
    return hmac.new(secret, domain + body, hashlib.sha256).digest()


def _seal(obj: Mapping[str, Any], secret: bytes | None, domain: bytes) -> bytes:
    if len(obj) > _MAX_ENTRIES:
        raise WireError("malformed", f"a message holds at most {_MAX_ENTRIES} fields")
    if _too_deep(obj):
        raise WireError("malformed", f"a message nests maps or arrays at most {MAX_NESTING} deep")
    body = _pack(obj)
    if secret is not None:
        mac = _mac(secret, domain, body)
        body = bytes([body[0] + 1]) + body[1:] + _SIG_TRAILER + mac
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
    if not (
        isinstance(sig, bytes)
        and 0x81 <= raw[0] <= 0x8F
        and len(raw) > _SIG_LEN
        and raw[-_SIG_LEN:] == _SIG_TRAILER + sig
    ):
        raise WireError("forged", "message signature is misplaced or malformed")
    body = bytes([raw[0] - 1]) + raw[1:-_SIG_LEN]
    if not hmac.compare_digest(_mac(secret, domain, body), sig):
        raise WireError("forged", "message signature does not match")
    return obj


def _too_deep(obj: object) -> bool:
    """Tell whether obj nests maps and arrays deeper than MAX_NESTING (without recursing)."""
    level: list[object] = [obj]
    for _ in range(MAX_NESTING):
        below: list[object] = []
        for item in level:
            if isinstance(item, dict):
                below.extend(item.values())
            elif isinstance(item, list):
                below.extend(item)
        if not below:
            return False
        level = below
    return any(isinstance(item, dict | list) for item in level)


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
        from diagnose._spec import validate_select

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
    return _seal(body, secret, _SPEC_DOMAIN + spec_id.encode() + b"\x00")


def decode_spec(spec_id: str, raw: bytes | str, secret: bytes | None = None) -> dict[str, Any]:
    """Decode a stored spec (with an empty ``applied``); raise WireError if it is not sound."""
    obj = _open(raw, secret, _SPEC_DOMAIN + spec_id.encode() + b"\x00")
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
    return _seal(event, secret, _EVENT_DOMAIN)


def decode_event(raw: bytes, secret: bytes | None = None) -> dict[str, Any]:
    """Decode one event into ``{"op", "id", "version"[, "spec"]}``; raise WireError if unsound."""
    event = _open(raw, secret, _EVENT_DOMAIN)
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


def _iso(value: _dt.datetime | None) -> str | None:
    return None if value is None else to_utc(value).isoformat()


def _from_iso(value: object) -> _dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return to_utc(_dt.datetime.fromisoformat(value))
    except ValueError:
        return None


COUNTS = ("fired", "dropped", "errors")


def encode_status_field(
    lastmodified: _dt.datetime | None,
    error: str | None,
    at: _dt.datetime,
    counts: Mapping[str, int] | None = None,
) -> str:
    """Encode one status hash field: JSON ``{"lm": ISO, "err": null|text, "at": ISO,
    "fired": N, "dropped": N, "errors": N}``."""
    # Written by hand, exactly as json.dumps() writes the dict (the summary finds the
    # "lm"/"err" prefix in the raw text): every subscriber encodes one at each publish.
    lm = "null" if lastmodified is None else f'"{to_utc(lastmodified).isoformat()}"'
    err = "null" if error is None else json.dumps(error)
    count = (counts or {}).get
    return (
        f'{{"lm": {lm}, "err": {err}, "at": "{to_utc(at).isoformat()}", '
        f'"fired": {int(count("fired", 0))}, "dropped": {int(count("dropped", 0))}, '
        f'"errors": {int(count("errors", 0))}}}'
    )


def applied_mark(lastmodified: _dt.datetime) -> bytes:
    """Return how a status field written by encode_status_field() for this lastmodified,
    applied without error, begins: the summary counts such fields without parsing them."""
    return f'{{"lm": "{to_utc(lastmodified).isoformat()}", "err": null'.encode()


def with_counts(raw: str, counts: Mapping[str, int]) -> str:
    """Return a status field's JSON text with its counts replaced."""
    field = json.loads(raw)
    for name in COUNTS:
        field[name] = int(counts.get(name, 0))
    return json.dumps(field)


def decode_status_field(raw: str | bytes) -> dict[str, Any]:
    """Decode one status hash field into ``{"lm": datetime|None, "err": str|None, "at": ...}``."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        obj = None
    if not isinstance(obj, dict):
        return {"lm": None, "err": f"unreadable status field: {raw!r:.200}", "at": None}
    err = obj.get("err")
    field: dict[str, Any] = {
        "lm": _from_iso(obj.get("lm")),
        "err": None if err is None else str(err),
        "at": _from_iso(obj.get("at")),
    }
    for name in COUNTS:
        count = obj.get(name)
        field[name] = count if isinstance(count, int) and not isinstance(count, bool) else 0
    return field


def output_maxlen(text: str | None) -> int:
    """Read DIAGNOSE_OUTPUT_MAXLEN: a positive number of entries (OUTPUT_MAXLEN if unset)."""
    if text is None or not text.strip():
        return OUTPUT_MAXLEN
    try:
        maxlen = int(text)
    except ValueError:
        maxlen = 0
    if maxlen < 1:
        raise ValueError(f"DIAGNOSE_OUTPUT_MAXLEN must be a positive integer, not {text!r}")
    return maxlen


def encode_output(
    process: str,
    spec: str,
    name: str,
    itype: str,
    value: str,
    tags: Mapping[str, Any],
    at: float,
) -> dict[str, str]:
    """Return the fields of one output stream entry (``at`` in unix seconds)."""
    when = _dt.datetime.fromtimestamp(at, _dt.UTC).isoformat(timespec="milliseconds")
    return {
        "process": process,
        "spec": spec,
        "name": name,
        "type": itype,
        "value": value,
        "tags": json.dumps(dict(tags), ensure_ascii=False, separators=(",", ":"), default=str),
        "at": when.replace("+00:00", "Z"),
    }


def decode_output(entry_id: str | bytes, fields: Mapping[Any, Any]) -> dict[str, Any]:
    """Return an output stream entry as ``{"id", OUTPUT_FIELDS...}``, all text; a field
    missing from the entry (written by someone else) is ``""``."""
    text = {
        (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): (
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        )
        for k, v in fields.items()
    }
    entry = {"id": entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)}
    for name in OUTPUT_FIELDS:
        entry[name] = text.get(name, "")
    return entry
