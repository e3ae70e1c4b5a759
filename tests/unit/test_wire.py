"""Tests of the wire format: key names, codec, signing, limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack
import pytest

import diagnose_redis
from diagnose_redis import protocol as wire
from diagnose_redis.exceptions import WireError
from diagnose_redis.protocol import Keys

LM = dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
SPEC = {
    "target": "pkg.mod.func",
    "instrument": {"type": "log", "name": "n", "value": "result", "event": "return", "custom": {}},
    "lifespan": 5,
    "lastmodified": LM,
    "applied": {"p": {"lm": LM, "err": None}},
}


def test_all_names_exist() -> None:
    """Every name in diagnose_redis.__all__ resolves."""
    for name in diagnose_redis.__all__:
        assert getattr(diagnose_redis, name) is not None


def test_keys_layout() -> None:
    """Keys names every key and channel under the prefix, and parses ids back."""
    keys = Keys("pfx")
    assert keys.spec("a.b") == "pfx:spec:a.b"
    assert keys.events == "pfx:events"
    assert keys.status("web-1:42") == "pfx:status:web-1:42"
    assert keys.processes == "pfx:processes"
    assert keys.spec_id(b"pfx:spec:x:y") == "x:y"
    assert keys.spec_id("other:spec:x") is None
    assert keys.process_id("pfx:status:h:1") == "h:1"


@pytest.mark.parametrize("secret", [None, b"s3cret"])
def test_spec_round_trip(secret: bytes | None) -> None:
    """A spec decodes to what was encoded, with an empty applied and an aware UTC lastmodified."""
    raw = wire.encode_spec("one", SPEC, secret)
    plain = msgpack.unpackb(raw, timestamp=3)
    assert "applied" not in plain
    assert ("sig" in plain) == (secret is not None)
    decoded = wire.decode_spec("one", raw, secret)
    assert decoded == {**SPEC, "applied": {}}


def test_naive_lastmodified_is_utc() -> None:
    """A naive lastmodified is encoded as UTC."""
    naive = {**SPEC, "lastmodified": LM.replace(tzinfo=None)}
    assert wire.decode_spec("x", wire.encode_spec("x", naive))["lastmodified"] == LM


@pytest.mark.parametrize(
    ("op", "spec"), [("put", SPEC), ("delete", None), ("version", None)], ids=str
)
@pytest.mark.parametrize("secret", [None, b"k"])
def test_event_round_trip(op: str, spec: dict | None, secret: bytes | None) -> None:
    """Every op survives encoding and decoding, with and without a secret."""
    raw = wire.encode_event(op, "" if op == "version" else "a", 7, spec, secret)
    event = wire.decode_event(raw, secret)
    assert event["op"] == op and event["version"] == 7
    if op == "put":
        assert event["spec"]["lastmodified"] == LM and event["id"] == "a"


def test_event_is_a_plain_msgpack_map() -> None:
    """A put event is readable by any msgpack decoder, with op, id, version and spec."""
    event = msgpack.unpackb(wire.encode_event("put", "a", 3, SPEC, b"k"), timestamp=3)
    assert {"op", "id", "version", "spec"} <= set(event)
    assert event["spec"]["target"] == "pkg.mod.func"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xc1garbage", "malformed"),
        (msgpack.packb([1, 2]), "malformed"),
        (msgpack.packb({"op": "put", "id": "a", "version": 1}), "malformed"),
        (msgpack.packb({"op": "zap", "id": "a", "version": 1}), "malformed"),
        (msgpack.packb({"op": "delete", "id": "a b", "version": 1}), "malformed"),
        (msgpack.packb({"op": "delete", "id": "a", "version": "1"}), "malformed"),
        (msgpack.packb({"op": "delete", "id": "a", "version": True}), "malformed"),
        (b"\x80" + b"x" * wire.MAX_MESSAGE_BYTES, "oversized"),
        ("text", "malformed"),  # not bytes at all: raw is Any
    ],
)
def test_bad_events_are_refused(raw: Any, reason: str) -> None:
    """Undecodable, malformed and oversized events raise WireError with their reason."""
    with pytest.raises(WireError) as info:
        wire.decode_event(raw)
    assert info.value.reason == reason


def test_unsigned_refused_with_secret() -> None:
    """A subscriber with a secret refuses an unsigned event."""
    with pytest.raises(WireError) as info:
        wire.decode_event(wire.encode_event("delete", "a", 1), b"k")
    assert info.value.reason == "unsigned"


def _tamper(raw: bytes) -> bytes:
    return raw.replace(b"pkg.mod.func", b"pkg.mod.fund")


@pytest.mark.parametrize(
    "forge",
    [
        lambda raw: wire.encode_event("put", "a", 1, SPEC, b"wrong"),
        _tamper,
        lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]),
        lambda raw: msgpack.packb({**msgpack.unpackb(raw, timestamp=3), "sig": "x"}, datetime=True),
    ],
    ids=["other-key", "tampered-body", "tampered-sig", "sig-not-bytes"],
)
def test_forged_events_are_refused(forge) -> None:
    """An event signed with another key, or altered after signing, is refused as forged."""
    raw = forge(wire.encode_event("put", "a", 1, SPEC, b"k"))
    with pytest.raises(WireError) as info:
        wire.decode_event(raw, b"k")
    assert info.value.reason == "forged"


def test_stored_spec_signature_binds_its_id() -> None:
    """A signed stored spec copied under another id fails verification."""
    raw = wire.encode_spec("one", SPEC, b"k")
    with pytest.raises(WireError):
        wire.decode_spec("two", raw, b"k")


def test_status_field_round_trip() -> None:
    """A status field is JSON text and decodes back to datetimes."""
    text = wire.encode_status_field(LM, "boom", LM)
    assert '"err": "boom"' in text
    zero = {"fired": 0, "dropped": 0, "errors": 0}
    assert wire.decode_status_field(text) == {"lm": LM, "err": "boom", "at": LM, **zero}
    assert wire.decode_status_field(b"{nope")["err"].startswith("unreadable")


def test_status_field_counts() -> None:
    """fired, dropped and errors ride in the field as integers; with_counts replaces them."""
    text = wire.encode_status_field(LM, None, LM, {"fired": 3, "dropped": 2, "errors": 0})
    assert '"fired": 3' in text and '"dropped": 2' in text
    again = wire.with_counts(text, {"fired": 9, "dropped": 4, "errors": 1})
    decoded = wire.decode_status_field(again)
    assert (decoded["fired"], decoded["dropped"], decoded["errors"], decoded["at"]) == (9, 4, 1, LM)
    assert wire.decode_status_field('{"lm": null, "fired": "x"}')["fired"] == 0


@pytest.mark.parametrize(
    ("lastmodified", "error", "counts"),
    [
        (LM, None, None),
        (None, None, {}),
        (LM.replace(tzinfo=None), 'Name\'Error: "x" is not defined\n\tat é', {"fired": 1}),
        (LM.astimezone(dt.timezone(dt.timedelta(hours=-5))), "", {"errors": 2.0, "dropped": 7}),
    ],
)
def test_status_field_is_the_json_of_its_fields(
    lastmodified: dt.datetime | None, error: str | None, counts: dict[str, Any] | None
) -> None:
    """The field is written exactly as json.dumps writes its dict (the summary looks for the
    "lm"/"err" prefix in the raw text), whatever the zone, error text and counts."""
    import json

    at = LM + dt.timedelta(seconds=1)
    expected = {
        "lm": None if lastmodified is None else lastmodified.astimezone(dt.UTC).isoformat()
        if lastmodified.tzinfo else lastmodified.replace(tzinfo=dt.UTC).isoformat(),
        "err": error,
        "at": at.isoformat(),
        **{name: int((counts or {}).get(name, 0)) for name in ("fired", "dropped", "errors")},
    }  # fmt: skip
    text = wire.encode_status_field(lastmodified, error, at, counts)
    assert text == json.dumps(expected)


def test_expired_channel_names_the_database() -> None:
    """The keyevent channel for expired keys carries the database number."""
    from diagnose_redis import expired_channel

    assert expired_channel(0) == "__keyevent@0__:expired"
    assert expired_channel(7) == "__keyevent@7__:expired"


def test_bad_spec_id_raises_the_package_error() -> None:
    """check_spec_id raises SpecIdError, still a ValueError for older callers."""
    from diagnose_redis import SpecIdError, check_spec_id

    with pytest.raises(SpecIdError):
        check_spec_id("has space")
    assert issubclass(SpecIdError, ValueError) and check_spec_id("ok.id-1") == "ok.id-1"


def test_applied_mark_begins_an_applied_field_only() -> None:
    """applied_mark() is how the field of that version, applied without error, begins; a
    field with an error, or of another version, does not begin so."""
    east = LM.astimezone(dt.timezone(dt.timedelta(hours=3)))
    mark = wire.applied_mark(east)
    assert wire.encode_status_field(LM, None, LM).encode().startswith(mark)
    assert not wire.encode_status_field(LM, "boom", LM).encode().startswith(mark)
    later = LM + dt.timedelta(microseconds=1)
    assert not wire.encode_status_field(later, None, LM).encode().startswith(mark)
