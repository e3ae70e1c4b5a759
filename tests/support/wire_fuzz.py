"""Hypothesis strategies for what can arrive on a fleet's channel: every kind of bad message.

The number of examples comes from ``DIAGNOSE_FUZZ_EXAMPLES`` (``make fuzz`` sets 10,000);
``make test`` runs FUZZ_EXAMPLES' default of 100 per test, in a few seconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from typing import Any

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from diagnose_redis.protocol import MAX_MESSAGE_BYTES, MAX_NESTING, encode_event

FUZZ_EXAMPLES = int(os.environ.get("DIAGNOSE_FUZZ_EXAMPLES") or 100)
SECRET = b"fleet-secret"
LM = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def good_spec(target: str = "support.wire_fuzz.nothing") -> dict[str, Any]:
    """Return a sound spec, the starting point of every mutation."""
    return {
        "target": target,
        "instrument": {"type": "log", "name": "n", "value": "result", "custom": {}},
        "lifespan": 5,
        "lastmodified": LM,
    }


def nothing() -> None:
    """Do nothing: the target good_spec names."""


def nested(depth: int, leaf: Any = 0) -> Any:
    """Return leaf inside depth alternating arrays and maps."""
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"k": leaf}
    return leaf


# Every integer msgpack can carry.
integers = st.integers(min_value=-(2**63), max_value=2**64 - 1)
# Values of every msgpack type, including the ones no field expects.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.datetimes(timezones=st.just(dt.UTC)),
)
any_value = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _up_to(levels: int) -> st.SearchStrategy[Any]:
    """Values nesting arrays and maps at most levels deep."""
    values: st.SearchStrategy[Any] = scalars
    for _ in range(levels):
        values = st.one_of(
            scalars,
            st.lists(values, max_size=3),
            st.dictionaries(st.text(max_size=8), values, max_size=3),
        )
    return values


# A bad spec stays within the wire's nesting limit, so that it reaches the manager.
shallow_value = _up_to(3)
versions = st.one_of(
    st.integers(min_value=-(2**63), max_value=-1),
    st.integers(min_value=2**40, max_value=2**64 - 1),
    st.just(0),
    any_value,
)

EVENT_FIELDS = ("op", "id", "version", "spec")
SPEC_FIELDS = ("target", "instrument", "lastmodified", "lifespan")
INSTRUMENT_FIELDS = ("type", "name", "value", "event", "custom", "internal", "line")


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, datetime=True)


def seal(
    obj: dict[str, Any], secret: bytes = SECRET, domain: bytes = b"diagnose-event\x00"
) -> bytes:
    """Sign a map as the wire's docstring says, without the limits its encoders keep: what a
    buggy or hostile publisher holding the secret could send."""
    body = _pack(obj)
    mac = hmac.new(secret, domain + body, hashlib.sha256).digest()
    return bytes([body[0] + 1]) + body[1:] + b"\xa3sig\xc4\x20" + mac


@st.composite
def signed_events(draw: st.DrawFn, version: int | None = None) -> bytes:
    """A put, delete or version event signed with SECRET, at a version that applies nothing."""
    op = draw(st.sampled_from(("put", "delete", "version")))
    at = draw(st.one_of(st.just(0), st.integers(2**40, 2**63))) if version is None else version
    spec_id = "" if op == "version" else draw(st.from_regex(r"[a-z0-9_.:-]{1,20}", fullmatch=True))
    return encode_event(op, spec_id, at, good_spec() if op == "put" else None, SECRET)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A signed event with bits flipped, bytes cut, added, or spliced: never the original."""
    raw = draw(signed_events())
    how = draw(st.sampled_from(("flip", "cut", "append", "splice", "header")))
    if how == "flip":
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        out = bytes(data)
    elif how == "cut":
        out = raw[: draw(st.integers(0, len(raw) - 1))]
    elif how == "append":
        out = raw + draw(st.binary(min_size=1, max_size=40))
    elif how == "splice":
        i = draw(st.integers(0, len(raw) - 1))
        j = draw(st.integers(i, len(raw)))
        out = raw[:i] + draw(st.binary(max_size=20)) + raw[j:]
    else:
        out = bytes([draw(st.integers(0, 255))]) + raw[1:]
    return out if out != raw else out + b"\x00"


@st.composite
def wrong_fields(draw: st.DrawFn) -> bytes:
    """A correctly signed event whose wire fields (event, spec) have wrong types or values."""
    from diagnose_redis import protocol as wire

    spec: Any = good_spec()
    event: dict[str, Any] = {"op": "put", "id": "fuzzed", "version": 1, "spec": spec}
    where = draw(st.sampled_from(("event", "spec", "missing", "nesting")))
    if where == "event":
        field = draw(st.sampled_from(EVENT_FIELDS))
        value = draw(versions if field == "version" else any_value)
        if field == "op" and value in wire.OPS:
            value = 1
        if field == "id" and isinstance(value, str) and wire.SPEC_ID_PATTERN.match(value):
            value = None
        if field == "spec" and isinstance(value, dict):
            value = [value]
        if field == "version":
            event["version"] = value
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                event["op"] = "nope"  # a sound version: make the event unsound elsewhere
        else:
            event[field] = value
    elif where == "spec":
        field = draw(st.sampled_from(SPEC_FIELDS))
        wrong: dict[str, Any] = {
            "target": st.one_of(st.none(), integers, st.binary(), st.lists(scalars)),
            "instrument": st.one_of(scalars, st.lists(scalars)),
            "lastmodified": st.one_of(st.none(), integers, st.text(), st.floats()),
            "lifespan": st.one_of(st.booleans(), st.text(), st.binary(), st.lists(scalars)),
        }
        spec[field] = draw(wrong[field])
    elif where == "missing":
        victim = draw(st.sampled_from(EVENT_FIELDS + SPEC_FIELDS[:3]))
        (event if victim in EVENT_FIELDS else spec).pop(victim)
        if victim == "id":
            event["op"] = "delete"
        if victim == "version":
            event["op"] = "delete"
    else:
        depth = draw(st.integers(MAX_NESTING, 1000))
        spec["instrument"]["custom"] = {"deep": nested(depth)}
    return seal(event)


oversized = st.builds(
    lambda extra, n: encode_event("delete", "x", 0) + b"\x00" * (MAX_MESSAGE_BYTES + n) + extra,
    st.binary(max_size=10),
    st.integers(0, 4096),
)
unsigned = st.builds(lambda n: encode_event("version", "", n), st.integers(0, 2**63))
wrongly_signed = st.builds(
    lambda key, n: encode_event("delete", "a", n, None, key),
    st.binary(min_size=1, max_size=16).filter(lambda k: k != SECRET),
    st.integers(0, 2**63),
)
garbage = st.one_of(
    st.binary(max_size=200),
    st.builds(_pack, any_value),
    st.builds(lambda depth: _pack(nested(depth)), st.integers(MAX_NESTING + 1, 500)),
    st.builds(lambda depth: b"\x91" * depth + b"\xc0", st.integers(1000, 5000)),
)

#: Messages a subscriber with SECRET must drop and count, each of them.
bad_messages = st.one_of(garbage, mutated(), wrong_fields(), oversized, unsigned, wrongly_signed)


@st.composite
def bad_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec sound on the wire whose instrument's fields have wrong types or values."""
    targets = ("support.wire_fuzz.nothing", "no.such.module", "support.wire_fuzz")
    spec = good_spec(draw(st.sampled_from(targets)))
    instrument = spec["instrument"]
    for field in draw(st.lists(st.sampled_from(INSTRUMENT_FIELDS), min_size=1, max_size=3)):
        instrument[field] = draw(shallow_value)
    expression = draw(
        st.sampled_from(("(" * 300 + "1" + ")" * 300, "~" * 20000 + "1", "1+" * 10000 + "1", ""))
    )
    if draw(st.booleans()):
        instrument["value"] = expression
    spec["lifespan"] = draw(
        st.one_of(st.none(), st.floats(), st.integers(-(2**63), 2**63), st.just(1e308))
    )
    return spec
