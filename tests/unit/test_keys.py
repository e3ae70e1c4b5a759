"""Named signing keys, without a server: reading DIAGNOSE_SECRET, signatures that name their
key, several signatures over one spec's bytes, and the wire compatibility of a bare secret."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnose_redis import protocol as wire
from diagnose_redis.exceptions import KeyringError, UnknownKey, WireError
from diagnose_redis.protocol import (
    MAX_KEYS,
    MAX_SIGNATURES,
    ApprovalPolicy,
    Keyring,
    countersign,
    keyring,
    open_event,
    open_spec,
    unsealed_spec,
)

LM = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
SPEC: dict[str, Any] = {
    "target": "pkg.mod.func",
    "instrument": {"type": "log", "name": "n", "value": "result", "event": "return", "custom": {}},
    "lifespan": 5,
    "lastmodified": LM,
}
WORKER = "k1:alpha,k2:beta"


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, datetime=True)


def _old_seal(obj: dict[str, Any], secret: bytes, domain: bytes) -> bytes:
    """Sign as the code before key ids did: the exact bytes a deployed fleet holds."""
    body = _pack(obj)
    mac = hmac.new(secret, domain + body, hashlib.sha256).digest()
    return bytes([body[0] + 1]) + body[1:] + b"\xa3sig\xc4\x20" + mac


@pytest.mark.parametrize(
    ("text", "ids", "named"),
    [
        ("k1:alpha", ["k1"], True),
        ("k1:alpha, k2:beta", ["k1", "k2"], True),
        ("new-2025.1:s3cr:et,old_1:x", ["new-2025.1", "old_1"], True),
        ("just a secret", [], False),
        ("a,b,c", [], False),  # commas but no KEYID: is one bare secret, as before
        (b"bytes:are:bare", [], False),
    ],
)
def test_a_secret_setting_reads_as_named_keys_or_one_bare_secret(
    text: str | bytes, ids: list[str], named: bool
) -> None:
    """KEYID:SECRET items make named keys, the first signing; anything else is one bare secret."""
    ring = keyring(text)
    assert ring is not None and ring.named == named and ring.ids == ids
    if not named:
        raw = text if isinstance(text, bytes) else text.encode()
        assert ring.bare_secret == raw


def test_no_secret_means_unsigned() -> None:
    """None and the empty text give no keyring (unsigned)."""
    assert keyring(None) is None and keyring("") is None and keyring(b"") is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("k1:topsecret,oops", "item 2"),
        ("k1:topsecret,k2:", "'k2' has an empty secret"),
        ("k1:topsecret,k1:othersecret", "'k1' is listed twice"),
        (",".join(f"k{i}:topsecret{i}" for i in range(MAX_KEYS + 1)), f"at most {MAX_KEYS}"),
    ],
)
def test_an_unreadable_key_list_is_refused_without_showing_a_secret(text: str, says: str) -> None:
    """A broken key list raises KeyringError naming the item or key id, never a secret."""
    with pytest.raises(KeyringError) as info:
        keyring(text)
    assert says in str(info.value)
    assert "secret" not in str(info.value).replace("empty secret", "")
    assert "topsecret" not in repr(info.value)


def test_a_keyring_never_shows_its_secrets() -> None:
    """repr shows key ids only."""
    assert repr(keyring("k1:alpha,k2:beta")) == "Keyring(k1, k2)"
    ring = keyring("k1:alpha")
    assert ring is not None and "alpha" not in repr(ring.signer)
    assert "s3" not in repr(keyring("s3"))


@pytest.mark.parametrize("op", ["put", "delete", "version"])
def test_a_bare_secret_signs_exactly_as_before(op: str) -> None:
    """Events and stored specs signed with a bare secret are byte for byte what the code
    before key ids wrote: specs and events already stored or in flight still verify."""
    event: dict[str, Any] = {"op": op, "id": "" if op == "version" else "a", "version": 7}
    if op == "put":
        event["spec"] = SPEC
    new = wire.encode_event(op, event["id"], 7, SPEC if op == "put" else None, b"k")
    assert new == _old_seal(event, b"k", b"diagnose-event\x00")
    assert wire.encode_spec("a", SPEC, "k") == _old_seal(SPEC, b"k", b"diagnose-spec\x00a\x00")
    assert open_event(_old_seal(event, b"k", b"diagnose-event\x00"), "k").value["version"] == 7


def test_a_named_signature_names_its_key() -> None:
    """A stored spec signed with named keys ends with "sigs": [[KEYID, MAC]], the first key's."""
    stored = msgpack.unpackb(wire.encode_spec("a", SPEC, "k2:beta,k1:alpha"), timestamp=3)
    assert "sig" not in stored
    [[key_id, mac]] = stored["sigs"]
    assert key_id == "k2" and isinstance(mac, bytes) and len(mac) == 32


@pytest.mark.parametrize("signer", ["k1:alpha", "k2:beta", "k2:beta,k9:other"])
def test_a_process_with_two_keys_verifies_what_either_signs(signer: str) -> None:
    """Specs and events signed with either of a worker's keys verify, naming that key."""
    opened = open_spec("a", wire.encode_spec("a", SPEC, signer), WORKER)
    assert opened.signers == {signer[:2]}
    event = open_event(wire.encode_event("put", "a", 3, SPEC, signer), WORKER)
    assert event.signers == {signer[:2]} and event.value["spec"]["target"] == "pkg.mod.func"


def test_a_third_key_is_refused_by_name() -> None:
    """A spec or event signed with a key the worker does not hold raises UnknownKey naming
    it, and carries what it claims to be (to report it, never to apply it)."""
    for raw, opener in (
        (wire.encode_spec("a", SPEC, "k3:gamma"), lambda r: open_spec("a", r, WORKER)),
        (wire.encode_event("put", "a", 3, SPEC, "k3:gamma"), lambda r: open_event(r, WORKER)),
    ):
        with pytest.raises(UnknownKey) as info:
            opener(raw)
        assert str(info.value) == "signed with key 'k3', which this process does not hold"
        assert info.value.reason == "unknown-key" and info.value.body is not None


def test_a_held_key_that_does_not_match_is_a_forgery() -> None:
    """A signature naming a key the worker holds, with a wrong MAC, is refused as forged."""
    with pytest.raises(WireError) as info:
        open_spec("a", wire.encode_spec("a", SPEC, "k1:not-alpha"), WORKER)
    assert info.value.reason == "forged" and not isinstance(info.value, UnknownKey)


def test_named_keys_accept_a_bare_secret_among_them() -> None:
    """A worker listing old:S,new:N verifies what a bare secret S signed: moving from a bare
    secret to named keys has no moment where probes stop applying."""
    assert open_spec("a", wire.encode_spec("a", SPEC, "S"), "new:N,old:S").signers == {"old"}


def test_an_approval_adds_a_second_signature_over_the_same_bytes() -> None:
    """countersign keeps the publisher's signature and body, adds the approver's with the
    approval time, and the spec's lastmodified becomes that time where it is verified."""
    _, sealed = unsealed_spec("a", wire.encode_spec("a", SPEC, "k1:alpha"))
    approved_at = LM + dt.timedelta(minutes=30)
    approved = countersign(sealed, "k2:beta", approved_at)
    assert approved.body == sealed.body and approved.key_ids == ["k1", "k2"]
    opened = open_spec("a", approved.blob, WORKER)
    assert opened.signers == {"k1", "k2"} and opened.value["lastmodified"] == approved_at
    event = open_event(wire.encode_put(9, approved, "k2:beta"), WORKER)
    assert event.signers == {"k1", "k2"}
    assert event.value["spec"]["lastmodified"] == approved_at


def test_an_approval_out_of_its_window_is_refused() -> None:
    """An approval stamped more than a day after the spec was published does not count."""
    _, sealed = unsealed_spec("a", wire.encode_spec("a", SPEC, "k1:alpha"))
    late = countersign(sealed, "k2:beta", LM + dt.timedelta(days=2))
    with pytest.raises(WireError) as info:
        open_spec("a", late.blob, WORKER)
    assert info.value.reason == "stale"


def test_the_approval_time_cannot_be_moved_after_signing() -> None:
    """Changing the approval time a signature binds breaks that signature."""
    _, sealed = unsealed_spec("a", wire.encode_spec("a", SPEC, "k1:alpha"))
    blob = countersign(sealed, "k2:beta", LM + dt.timedelta(minutes=1)).blob
    stored = msgpack.unpackb(blob, timestamp=3)
    stored["sigs"][1][2] += 3_600_000
    with pytest.raises(WireError) as info:
        open_spec("a", _pack(stored), WORKER)
    assert info.value.reason == "forged"


def _with_sigs(sigs: Any) -> bytes:
    return _pack({**SPEC, "sigs": sigs})


MAC = b"m" * 32


@pytest.mark.parametrize(
    "raw",
    [
        _with_sigs([]),
        _with_sigs([["k1", MAC]] * (MAX_SIGNATURES + 1)),
        _with_sigs("k1"),
        _with_sigs([["k1"]]),
        _with_sigs([["k1", b"short"]]),
        _with_sigs([[1, MAC]]),
        _with_sigs([["bad id!", MAC]]),
        _with_sigs([["k" * 33, MAC]]),
        _with_sigs([["k1", MAC, "yesterday"]]),
        _with_sigs([["k1", MAC, -1]]),
        _with_sigs([["k1", MAC, 1, 2]]),
        _pack({**SPEC, "sig": MAC, "sigs": [["k1", MAC]]}),
        _pack({"sigs": [["k1", MAC]], **SPEC}),  # not the last entry
    ],
    ids=[
        "empty",
        "too-many",
        "not-a-list",
        "no-mac",
        "short-mac",
        "id-not-text",
        "bad-id",
        "long-id",
        "time-not-int",
        "negative-time",
        "four-items",
        "bare-and-named",
        "misplaced",
    ],
)
def test_malformed_signatures_are_refused_as_malformed(raw: bytes) -> None:
    """Any signature list that is not 1-4 sound [key id, MAC(, at)] entries, last in the map,
    is malformed: refused before any MAC is computed."""
    with pytest.raises(WireError) as info:
        open_spec("a", raw, WORKER)
    assert info.value.reason == "malformed"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=400))
def test_mutated_named_signatures_raise_only_wire_errors(junk: bytes, at: int) -> None:
    """Bytes spliced into a spec signed by two keys never raise anything but WireError, and
    never verify."""
    _, sealed = unsealed_spec("a", wire.encode_spec("a", SPEC, "k1:alpha"))
    blob = countersign(sealed, "k2:beta", LM).blob
    cut = at % len(blob)
    mutated = blob[:cut] + junk + blob[cut + len(junk) // 2 :]
    if mutated == blob:
        return
    try:
        opened = open_spec("a", mutated, WORKER)
    except WireError:
        return
    # Only a change that keeps the signed bytes and signatures whole may still verify.
    assert opened.value["target"] == "pkg.mod.func"


def test_the_policy_reads_types_or_all() -> None:
    """DIAGNOSE_REQUIRE_APPROVAL takes any type names (the fleet may add types) or all."""
    snap = {**SPEC, "instrument": {**SPEC["instrument"], "type": "snapshot"}}
    stats = {**SPEC, "instrument": {**SPEC["instrument"], "type": "stats"}}
    policy = ApprovalPolicy.parse("snapshot, exception")
    assert policy.covers(snap) and not policy.covers(SPEC) and not policy.covers(stats)
    assert ApprovalPolicy.parse("all").covers(SPEC) and ApprovalPolicy.parse("ALL").everything
    assert ApprovalPolicy.parse("stats").covers(stats)
    assert not ApprovalPolicy.parse("") and not ApprovalPolicy.parse(None)
    with pytest.raises(ValueError, match="not an instrument type"):
        ApprovalPolicy.parse("snapshot;rm -rf")


@pytest.mark.parametrize(
    ("signers", "held"),
    [(set(), True), ({"k1"}, True), ({"k1", ""}, True), ({"k1", "k2"}, False)],
)
def test_the_policy_needs_two_different_named_keys(signers: set[str], held: bool) -> None:
    """A covered spec needs two different key ids (a bare secret, "", counts for none)."""
    snap = {**SPEC, "instrument": {**SPEC["instrument"], "type": "snapshot"}}
    why = ApprovalPolicy.parse("snapshot").refusal(snap, signers)
    assert (why is not None) == held
    if held:
        assert why is not None and why.startswith("awaiting approval")


def test_keyrings_compare_by_keys() -> None:
    """Two keyrings of the same keys are equal; the order matters (the first signs)."""
    assert keyring("a:1,b:2") == keyring("a:1,b:2") != keyring("b:2,a:1")
    assert isinstance(keyring("a:1"), Keyring)
