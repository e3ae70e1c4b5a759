"""Tests of the subscriber's merge logic (no Redis): snapshots, events, expiry, reports."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

import diagnose
import diagnose_redis
from diagnose_redis._subscriber.mirror import Mirror
from diagnose_redis._subscriber.work_items import Event, Snapshot
from support.probes import decoded_spec

TARGET = f"{__name__}.target"


def target(x: int) -> int:
    """Return x times three: the function these tests probe."""
    return x * 3


def spec(value: str = "result", minutes_ago: float = 0, lifespan: float | None = 10) -> dict:
    """Return a spec on target as a subscriber decodes it."""
    return decoded_spec(TARGET, value, minutes_ago, lifespan)


def put(spec_id: str, version: int, body: dict[str, Any]) -> Event:
    return Event("put", spec_id, version, body)


def delete(spec_id: str, version: int) -> Event:
    return Event("delete", spec_id, version)


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    mgr = diagnose.ProbeManager()
    mgr.instrument_classes["test"] = diagnose.ProbeTestInstrument
    mgr.process_id = "host:1"
    yield Mirror(mgr, "host:1")
    with mgr.lock:
        mgr.specs.clear()
        mgr.apply()


def merge(mirror: Mirror, *items: Event | Snapshot) -> dict[str, Any] | None:
    with mirror.manager.lock:
        report = mirror.merge(list(items))
    if report is None:
        return None
    return {k: None if v is None else json.loads(v) for k, v in report.items()}


def test_events_put_and_delete(mirror: Mirror) -> None:
    """A put attaches and reports its lastmodified; a delete detaches and deletes the field."""
    body = spec("x * 2")
    report = merge(mirror, put("a", 1, body))
    assert report is not None and report["a"]["lm"] == body["lastmodified"].isoformat()
    assert report["a"]["err"] is None and mirror.version == 1 and mirror.owned == {"a"}
    assert target(2) == 6
    probe = diagnose.probes.active_probes[TARGET]
    assert [i.results for i in probe.instruments.values()] == [[4]]
    assert merge(mirror, delete("a", 2)) == {"a": None}
    assert TARGET not in diagnose.probes.active_probes and mirror.owned == set()


def test_snapshot_replaces_what_it_owned_only(mirror: Mirror) -> None:
    """A snapshot removes the owned specs it lacks; specs the host put itself stay."""
    host_spec = spec("0")
    mirror.manager.specs["mine"] = host_spec
    merge(mirror, put("a", 1, spec()), put("b", 2, spec()))
    report = merge(mirror, Snapshot(7, {"b": spec("1"), "c": spec()}))
    assert report is not None and report["a"] is None and set(report) == {"a", "b", "c"}
    assert mirror.owned == {"b", "c"} and mirror.version == 7
    assert set(mirror.manager.specs) == {"mine", "b", "c"}


def test_nothing_to_report_when_nothing_changed(mirror: Mirror) -> None:
    """The same spec again, at the same version, reports nothing; a new version alone does."""
    body = spec()
    merge(mirror, put("a", 1, body))
    assert merge(mirror, Snapshot(1, {"a": dict(body, applied={})})) is None
    assert merge(mirror, Snapshot(2, {"a": dict(body, applied={})})) == {}
    assert mirror.applies == 1


def test_expired_specs_are_removed_and_never_applied(mirror: Mirror) -> None:
    """A spec past its lifespan is not applied; an owned one is removed once it expires."""
    assert merge(mirror, put("old", 1, spec(minutes_ago=11))) is not None
    assert mirror.owned == set() and TARGET not in diagnose.probes.active_probes
    short = spec(lifespan=0.5 / 60)  # half a second
    merge(mirror, put("short", 2, short))
    when = mirror.soonest_expiry()
    assert when == pytest.approx(short["lastmodified"].timestamp() + 0.5)
    short["lastmodified"] -= dt.timedelta(seconds=1)  # as if a second went by
    assert merge(mirror) == {"short": None}
    assert mirror.soonest_expiry() == math.inf


def test_a_spec_that_fails_reports_its_error(mirror: Mirror) -> None:
    """A spec whose target does not exist is owned and reported with the error."""
    bad = dict(spec(), target="no_such_module.func")
    report = merge(mirror, put("bad", 1, bad))
    assert report is not None and "no_such_module" in report["bad"]["err"]
    assert mirror.owned == {"bad"}


def test_release_detaches_everything(mirror: Mirror) -> None:
    """release() takes every owned spec out of the manager."""
    merge(mirror, put("a", 1, spec()))
    mirror.release()
    assert mirror.owned == set() and mirror.manager.specs == {}
    assert TARGET not in diagnose.probes.active_probes


def test_start_with_a_bad_url_never_raises() -> None:
    """start() with an unusable URL hands back a stopped subscriber saying why."""
    sub = diagnose_redis.start("nosuchscheme://x", process_id="bad:1")
    try:
        assert not sub.running and sub.error and sub.version == 0 and sub.owned == set()
    finally:
        sub.stop()


def _fields(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """A report without its ``at`` (when it was made)."""
    if report is None:
        return None
    return {
        k: None if v is None else {f: x for f, x in v.items() if f != "at"}
        for k, v in report.items()
    }


def test_a_lone_edit_takes_the_edit_path_and_ends_as_the_general_merge(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each event alone, through merge() and through the general merge only (the edit path
    refused), gives the same report, version, owned specs and probes: edits, a re-publish,
    a bad expression and its fix, a select that leaves this process out, a delete."""
    from diagnose_redis._subscriber import mirror as mirror_module

    other_manager = diagnose.ProbeManager()
    other_manager.instrument_classes["test"] = diagnose.ProbeTestInstrument
    other_manager.process_id = "host:1"
    general = Mirror(other_manager, "host:1")
    monkeypatch.setattr(general, "_merge_edit", lambda event: mirror_module._GENERAL)
    taken: list[str] = []
    edit_path = mirror._merge_edit

    def spy(event: Event) -> Any:
        report = edit_path(event)
        if report is not mirror_module._GENERAL:
            taken.append(event.spec_id)
        return report

    monkeypatch.setattr(mirror, "_merge_edit", spy)
    first = spec("x * 2")
    again = dict(first, lastmodified=first["lastmodified"] + dt.timedelta(seconds=1))
    events = [
        put("a", 1, first),
        put("a", 2, spec("x * 3")),
        put("a", 3, again),  # the same content published again
        put("a", 4, spec("x.__class__")),  # refused by the policy
        put("a", 5, spec("x + 1")),
        put("b", 6, spec("x")),
        put("b", 7, dict(spec("x - 1"), select={"process": ["other:1"]})),
        delete("a", 8),
    ]
    try:
        for event in events:
            got = merge(mirror, Event(event.op, event.spec_id, event.version, _copy(event.spec)))
            want = merge(general, Event(event.op, event.spec_id, event.version, _copy(event.spec)))
            assert _fields(got) == _fields(want), event
            assert (mirror.version, mirror.owned) == (general.version, general.owned)
            assert set(mirror.manager.specs) == set(general.manager.specs)
        assert taken == ["a", "a", "a", "a"]  # the edits of an owned, applied spec
    finally:
        with general.manager.lock:
            general.manager.specs.clear()
            general.manager.apply()


def _copy(body: Any) -> dict[str, Any] | None:
    if body is None:
        return None
    return {**body, "instrument": dict(body["instrument"]), "applied": {}}


def test_an_edit_fires_the_new_expression_at_once(mirror: Mirror) -> None:
    """After an edit on the edit path, the next call of the target evaluates the new
    expression, and the edit's expiry is what the applier is told to wake for."""
    merge(mirror, put("a", 1, spec("x * 2")))
    edited = spec("x * 5", lifespan=1)
    report = merge(mirror, put("a", 2, edited))
    assert report is not None and report["a"]["lm"] == edited["lastmodified"].isoformat()
    assert target(2) == 6
    probe = diagnose.probes.active_probes[TARGET]
    assert [i.results for i in probe.instruments.values()] == [[10]]
    assert mirror.set_expiry == pytest.approx(edited["lastmodified"].timestamp() + 60)
    merge(mirror, put("a", 3, spec("x * 6", lifespan=None)))
    assert mirror.set_expiry == math.inf
