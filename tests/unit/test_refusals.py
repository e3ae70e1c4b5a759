"""Refused specs in the subscriber's mirror, without a server: told in the status, never in
the manager, bounded, and never able to take away what was applied on an unverified claim."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import diagnose
from diagnose_redis._subscriber.mirror import MAX_REFUSED, Mirror
from diagnose_redis._subscriber.verify import Verifier
from diagnose_redis._subscriber.work_items import Event, Refused, Snapshot
from diagnose_redis.exceptions import UnknownKey
from diagnose_redis.protocol import encode_event

TARGET = f"{__name__}.target"


def target(x: int) -> int:
    """Return x plus one: the function these tests probe."""
    return x + 1


def spec(**extra: Any) -> dict[str, Any]:
    """Return a log spec on target, published now."""
    return {
        "target": TARGET,
        "instrument": {"type": "log", "name": "n", "value": "result", "event": "return"},
        "lifespan": 10,
        "lastmodified": dt.datetime.now(dt.UTC),
        "applied": {},
        **extra,
    }


def merge(mirror: Mirror, *items: object) -> dict[str, str | None]:
    """Merge items under the manager's lock; return the status fields written."""
    with mirror.manager.lock:
        return mirror.merge(items) or {}


def test_a_refused_spec_is_reported_and_never_applied() -> None:
    """A Refused spec gets a status field with its lastmodified and error, not a probe."""
    mirror = Mirror(diagnose.ProbeManager(), "w:1")
    refused = Refused(spec(), "signed with key 'k3', which this process does not hold")
    report = merge(mirror, Snapshot(1, {"r": refused}))
    field = json.loads(report["r"] or "")
    assert field["err"] == refused.error and field["lm"] is not None
    assert "r" not in mirror.manager.specs and mirror.owned == set()


def test_a_verified_refusal_replaces_an_applied_version_and_a_delete_clears_it() -> None:
    """A spec applied, then refused (its new version awaits approval), is detached and
    reported refused; deleting it removes its field."""
    mirror = Mirror(diagnose.ProbeManager(), "w:1")
    merge(mirror, Event("put", "s", 1, spec()))
    assert "s" in mirror.owned
    report = merge(mirror, Event("put", "s", 2, Refused(spec(), "awaiting approval: ...")))
    assert "s" not in mirror.manager.specs and "s" not in mirror.owned
    assert json.loads(report["s"] or "")["err"] == "awaiting approval: ..."
    assert merge(mirror, Event("delete", "s", 3)) == {"s": None}
    assert mirror.refused == {}


def test_an_unverified_claim_never_takes_away_an_applied_spec() -> None:
    """An event signed only with a key not held, for a spec applied here, changes nothing."""
    mirror = Mirror(diagnose.ProbeManager(), "w:1")
    merge(mirror, Event("put", "s", 1, spec()))
    claim = Refused(spec(), "signed with key 'k3', which this process does not hold", sound=False)
    assert merge(mirror, Event("put", "s", 0, claim)) == {}
    assert "s" in mirror.owned and mirror.refused == {}


def test_refusals_are_bounded() -> None:
    """A flood of refusals for distinct ids reports at most MAX_REFUSED of them; a resync
    that holds none of them clears every field."""
    mirror = Mirror(diagnose.ProbeManager(), "w:1")
    claims = [
        Event("put", f"x{n}", 0, Refused(spec(), "signed with key 'k3'", sound=False))
        for n in range(MAX_REFUSED + 50)
    ]
    report = merge(mirror, *claims)
    assert len(report) == len(mirror.refused) == MAX_REFUSED
    cleared = merge(mirror, Snapshot(7, {}))
    assert len(cleared) == MAX_REFUSED and set(cleared.values()) == {None}


def test_a_refusal_whose_select_skips_this_process_leaves_no_field() -> None:
    """A refused spec that selects other processes is, here, no spec at all."""
    mirror = Mirror(diagnose.ProbeManager(), "w:1", {"role": "web"})
    refused = Refused(spec(select={"role": "batch"}), "awaiting approval: ...")
    assert merge(mirror, Snapshot(1, {"r": refused})) == {}


def test_the_verify_step_turns_an_unknown_key_event_into_a_claim() -> None:
    """Verifier.refusals gives an unverified claim for an unknown key's put, nothing for
    other errors; the worker's policy makes verified snapshots Refused until approved."""
    verifier = Verifier("k1:alpha,k2:beta", "snapshot")
    raw = encode_event("put", "p", 4, spec(), "k3:gamma")
    try:
        verifier.event(raw)
    except UnknownKey as exc:
        [claim] = verifier.refusals(exc)
    assert claim.spec_id == "p" and isinstance(claim.spec, Refused) and not claim.spec.sound
    snapshot = {**spec(), "instrument": {**spec()["instrument"], "type": "snapshot"}}
    held = verifier.event(encode_event("put", "s", 5, snapshot, "k1:alpha"))
    assert isinstance(held["spec"], Refused) and held["spec"].sound
    assert verifier.info() == {"keys": ["k1", "k2"], "approval": ["snapshot"]}
