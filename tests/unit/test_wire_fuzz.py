"""Fuzzing the wire decoder: whatever the bytes, a WireError or a sound event, nothing else."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diagnose_redis import protocol as wire
from diagnose_redis.exceptions import WireError
from diagnose_redis.protocol import codec, decode_event, decode_spec, encode_spec
from support.wire_fuzz import (
    SECRET,
    any_value,
    bad_messages,
    fuzz_settings,
    garbage,
    good_spec,
    mutated,
    signed_events,
)

SECRETS = pytest.mark.parametrize("secret", [None, SECRET], ids=["unsigned", "signed"])


def assert_sound(event: dict[str, Any]) -> None:
    """Check that a decoded event has the shape the subscriber relies on."""
    assert set(event) <= {"op", "id", "version", "spec"}
    assert event["op"] in wire.OPS
    assert type(event["version"]) is int and event["version"] >= 0
    if event["op"] != "version":
        assert wire.SPEC_ID_PATTERN.match(event["id"])
    if event["op"] == "put":
        spec = event["spec"]
        assert isinstance(spec["target"], str) and isinstance(spec["instrument"], dict)
        assert isinstance(spec["lastmodified"], dt.datetime) and spec["applied"] == {}


def decode_or_wire_error(decode: Any, *args: Any) -> Any:
    """Return what decode returns, or None if it raised WireError (any other error fails)."""
    try:
        return decode(*args)
    except WireError as exc:
        assert exc.reason in {"malformed", "oversized", "unsigned", "forged"}
        return None


@SECRETS
@fuzz_settings
@given(raw=st.one_of(garbage, bad_messages, st.builds(bytes, st.binary(max_size=2000))))
def test_any_bytes_decode_to_a_sound_event_or_a_wire_error(
    secret: bytes | None, raw: bytes
) -> None:
    """decode_event and decode_spec raise nothing but WireError, and what they return is sound."""
    event = decode_or_wire_error(decode_event, raw, secret)
    if event is not None:
        assert_sound(event)
    spec = decode_or_wire_error(decode_spec, "an-id", raw, secret)
    if spec is not None:
        assert_sound({"op": "put", "id": "x", "version": 0, "spec": spec})


@fuzz_settings
@given(raw=bad_messages)
def test_every_bad_message_is_refused_by_a_signed_decoder(raw: bytes) -> None:
    """Each generated bad message (garbage, mutated, wrong fields, oversized, unsigned, forged)
    is a WireError for a decoder holding the secret."""
    with pytest.raises(WireError):
        decode_event(raw, SECRET)


@fuzz_settings
@given(raw=signed_events(), version=st.integers(0, 2**64 - 1))
def test_signed_events_decode(raw: bytes, version: int) -> None:
    """Sound signed events decode (the mutations start from messages that are accepted)."""
    assert_sound(decode_event(raw, SECRET))
    assert decode_event(wire.encode_event("delete", "a", version, None, SECRET), SECRET) == {
        "op": "delete",
        "id": "a",
        "version": version,
    }


@fuzz_settings
@given(data=st.data(), spec_id=st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True))
def test_mutated_stored_specs_are_refused(data: st.DataObject, spec_id: str) -> None:
    """A stored spec with any byte changed, cut or added fails its signature; the original
    decodes, and under another id it does not."""
    raw = encode_spec(spec_id, good_spec(), SECRET)
    assert decode_spec(spec_id, raw, SECRET)["target"] == "support.wire_fuzz.nothing"
    with pytest.raises(WireError):
        decode_spec(spec_id + "x", raw, SECRET)
    i = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = raw[:i] + bytes([raw[i] ^ (1 << bit)]) + raw[i + 1 :]
    for changed in (flipped, raw[:i], raw + data.draw(st.binary(min_size=1, max_size=9))):
        with pytest.raises(WireError):
            decode_spec(spec_id, changed, SECRET)


@fuzz_settings
@given(value=any_value, keep=st.booleans())
def test_unsigned_maps_with_any_values_decode_sound_or_refused(value: Any, keep: bool) -> None:
    """An unsigned event whose fields hold any msgpack values is sound or a WireError."""
    event = {"op": "put", "id": "a", "version": 3, "spec": good_spec()}
    for field in ("op", "id", "version", "spec") if keep else ("spec",):
        raw = codec._pack({**event, field: value})
        decoded = decode_or_wire_error(decode_event, raw, None)
        if decoded is not None:
            assert_sound(decoded)


def test_mutations_are_never_the_original() -> None:
    """The mutated() strategy never yields a message that is still sound (checked by sampling)."""

    @fuzz_settings
    @given(raw=mutated())
    def check(raw: bytes) -> None:
        assert decode_or_wire_error(decode_event, raw, SECRET) is None

    check()


def test_nesting_past_the_limit_is_malformed() -> None:
    """A message nesting deeper than MAX_NESTING is refused as malformed, one level less is not."""
    from support.wire_fuzz import nested

    ok = {**good_spec(), "instrument": {**good_spec()["instrument"], "custom": nested(12)}}
    assert decode_spec("a", encode_spec("a", ok))["instrument"]["custom"] == nested(12)
    deep = {**ok, "instrument": {**ok["instrument"], "custom": nested(wire.MAX_NESTING)}}
    with pytest.raises(WireError, match="deeper than 16") as caught:
        decode_spec("a", codec._pack(deep))
    assert caught.value.reason == "malformed"
