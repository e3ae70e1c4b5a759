"""The ProbeManager: applying specs, reporting each one's outcome, and lifespans."""

from __future__ import annotations

import datetime
import gc
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

import diagnose
from diagnose import ProbeTestInstrument
from diagnose.probes import active_probes
from probe_targets import shop
from support.probes import CapturingManager, ProbeSet
from support.waiting import wait_for

PID = "test-process"


@pytest.fixture
def mgr() -> Iterator[CapturingManager]:
    """A manager of the test's own, with a "test" instrument type; emptied at the end."""
    manager = CapturingManager(PID)
    with ProbeSet():
        try:
            yield manager
        finally:
            manager.stop_background()
            manager.specs.clear()
            manager.apply()


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_spec(
    target: str = "probe_targets.shop.price",
    value: str = "result",
    type: str = "test",
    name: str = "spec",
    lifespan: float | None = None,
    lastmodified: datetime.datetime | None = None,
    **instrument: Any,
) -> dict[str, Any]:
    return {
        "target": target,
        "instrument": {"type": type, "name": name, "value": value, **instrument},
        "lifespan": lifespan,
        "lastmodified": lastmodified or now(),
        "applied": {},
    }


def instruments_named(target: str, name: str) -> list[Any]:
    """Return the instruments called name on target's probe."""
    probe = active_probes.get(target)
    if probe is None:
        return []
    return [i for i in probe.instruments.values() if i.name == name]


def the_instrument(target: str, name: str) -> ProbeTestInstrument:
    [inst] = instruments_named(target, name)
    return inst


def test_default_manager_and_alias() -> None:
    """diagnose.manager is a ProbeManager with log, hist, incr; InstrumentManager is an alias."""
    assert isinstance(diagnose.manager, diagnose.ProbeManager)
    assert diagnose.InstrumentManager is diagnose.ProbeManager
    assert {"log", "hist", "incr"} <= set(diagnose.manager.instrument_classes)
    assert diagnose.manager.instrument_classes["log"] is diagnose.LogInstrument
    for name in ("specs", "global_namespace", "apply", "apply_in_background", "check_call"):
        assert hasattr(diagnose.manager, name)
    for name in ("handle_error", "get_tags", "process_id"):
        assert hasattr(diagnose.manager, name)


def test_apply_attaches_and_records(mgr: CapturingManager) -> None:
    """apply() attaches each spec and sets applied[process_id] to its lastmodified, no error."""
    spec = make_spec()
    mgr.specs["s1"] = spec
    mgr.apply()
    assert spec["applied"] == {PID: {"lm": spec["lastmodified"], "err": None}}
    assert shop.price(5) == 10
    assert the_instrument("probe_targets.shop.price", "spec").results == [10]


def test_apply_twice_keeps_the_instrument(mgr: CapturingManager) -> None:
    """apply() with unchanged specs keeps the same instruments, and what they recorded."""
    mgr.specs["s1"] = make_spec()
    mgr.apply()
    shop.price(1)
    mgr.apply()
    shop.price(2)
    assert the_instrument("probe_targets.shop.price", "spec").results == [2, 4]


def test_spec_with_log_type_writes(
    mgr: CapturingManager, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spec of type log writes its probe line when the target runs."""
    mgr.specs["s1"] = make_spec(type="log", name="myapp.price", value="amount + 1")
    mgr.apply()
    shop.price(5)
    assert capsys.readouterr().out == "Probe (myapp.price) = 6\n"


def test_internal_spec_fires_at_end(mgr: CapturingManager) -> None:
    """A spec with "internal": True reads the target's locals."""
    mgr.specs["s1"] = make_spec(value="subtotal", internal=True)
    mgr.apply()
    shop.price(5, discount=1)
    assert the_instrument("probe_targets.shop.price", "spec").results == [10]


BAD_SPECS = {
    "unknown target": make_spec(target="probe_targets.shop.nowhere"),
    "unknown module": make_spec(target="probe_targets.no_such_module.f"),
    "not a function": make_spec(target="probe_targets.shop.RATE"),
    "a class": make_spec(target="probe_targets.shop.Cart"),
    "unknown type": make_spec(type="no-such-type"),
    "does not compile": make_spec(value="result +"),
    "refused expression": make_spec(value="x.__class__"),
    "refused tags": make_spec(custom={"tags": "{'a': __import__('os')}"}),
    "unknown event": make_spec(event="later"),
    "bad lifespan": make_spec(lifespan=-1),
    "no lastmodified": {**make_spec(), "lastmodified": None},
}


@pytest.mark.parametrize("bad", BAD_SPECS.values(), ids=list(BAD_SPECS))
def test_bad_spec_gets_an_error_and_others_still_apply(
    mgr: CapturingManager, bad: dict[str, Any]
) -> None:
    """A spec that cannot apply gets an error text in applied; the others apply regardless."""
    bad = {**bad, "applied": {}}
    good_before = make_spec(target="probe_targets.shop.add", value="a", name="before")
    good_after = make_spec(target="probe_targets.shop.price", value="amount", name="after")
    mgr.specs.update({"a-good": good_before, "b-bad": bad, "c-good": good_after})
    mgr.apply()
    err = bad["applied"][PID]["err"]
    assert isinstance(err, str) and err and "\n" not in err
    assert bad["applied"][PID]["lm"] == bad["lastmodified"]
    assert good_before["applied"][PID]["err"] is None
    assert good_after["applied"][PID]["err"] is None
    assert shop.add(1, 2) == 3 and shop.price(4) == 8
    assert the_instrument("probe_targets.shop.add", "before").results == [1]
    assert the_instrument("probe_targets.shop.price", "after").results == [4]


def test_bad_spec_on_a_probed_target_leaves_its_probe_alone(mgr: CapturingManager) -> None:
    """A bad spec on a target that already has a live instrument does not disturb it."""
    mgr.specs["good"] = make_spec(value="amount", name="good")
    mgr.apply()
    mgr.specs["bad"] = make_spec(value="x.__class__", name="bad")
    mgr.apply()
    shop.price(3)
    assert the_instrument("probe_targets.shop.price", "good").results == [3]
    assert "__class__" in mgr.specs["bad"]["applied"][PID]["err"]


def test_error_names_the_problem(mgr: CapturingManager) -> None:
    """The error text of an unknown target or type says what is wrong."""
    mgr.specs["t"] = make_spec(target="probe_targets.shop.nowhere")
    mgr.specs["y"] = make_spec(type="no-such-type")
    mgr.apply()
    assert "nowhere" in mgr.specs["t"]["applied"][PID]["err"]
    assert "no-such-type" in mgr.specs["y"]["applied"][PID]["err"]


def test_changing_a_spec_reapplies_it(mgr: CapturingManager) -> None:
    """A spec whose value or lastmodified changed is applied again, with the new value."""
    spec = make_spec(value="amount")
    mgr.specs["s1"] = spec
    mgr.apply()
    shop.price(3)
    changed = make_spec(value="amount * 100", lastmodified=now() + datetime.timedelta(seconds=1))
    mgr.specs["s1"] = changed
    mgr.apply()
    assert changed["applied"][PID] == {"lm": changed["lastmodified"], "err": None}
    shop.price(4)
    # The same instrument, edited in place as the original did: its log carries on.
    assert the_instrument("probe_targets.shop.price", "spec").results == [3, 400]


def test_fixing_a_bad_spec_clears_its_error(mgr: CapturingManager) -> None:
    """A spec that failed and is then corrected applies, and its error goes away."""
    mgr.specs["s1"] = make_spec(value="result +")
    mgr.apply()
    assert mgr.specs["s1"]["applied"][PID]["err"]
    mgr.specs["s1"] = make_spec(value="result")
    mgr.apply()
    assert mgr.specs["s1"]["applied"][PID]["err"] is None
    shop.price(1)
    assert the_instrument("probe_targets.shop.price", "spec").results == [2]


def test_removing_a_spec_detaches(mgr: CapturingManager) -> None:
    """A spec taken out of specs is detached at the next apply: the original code is back."""
    original = shop.price.__code__
    mgr.specs["s1"] = make_spec()
    mgr.apply()
    assert shop.price.__code__ is not original
    del mgr.specs["s1"]
    mgr.apply()
    assert shop.price.__code__ is original
    assert "probe_targets.shop.price" not in active_probes


def test_removing_one_of_two_specs_on_a_target(mgr: CapturingManager) -> None:
    """Removing one of two specs on a target leaves the other firing."""
    mgr.specs["one"] = make_spec(value="amount", name="one")
    mgr.specs["two"] = make_spec(value="result", name="two")
    mgr.apply()
    del mgr.specs["one"]
    mgr.apply()
    shop.price(3)
    assert instruments_named("probe_targets.shop.price", "one") == []
    assert the_instrument("probe_targets.shop.price", "two").results == [6]


def test_manager_leaves_other_instruments_alone(mgr: CapturingManager) -> None:
    """Removing the manager's specs keeps instruments it did not add (a sensor's)."""
    mgr.specs["s1"] = make_spec(value="amount", name="spec")
    mgr.apply()
    with diagnose.sensor("probe_targets.shop.price", "result") as s:
        del mgr.specs["s1"]
        mgr.apply()
        shop.price(2)
        assert s.results == [4]


def test_lastmodified_may_be_naive_or_aware(mgr: CapturingManager) -> None:
    """Naive lastmodified values are UTC; aware ones in any zone give the same expiry."""
    utc_now = now()
    east = datetime.timezone(datetime.timedelta(hours=5))
    old = utc_now - datetime.timedelta(minutes=2)
    specs = {
        "naive-live": make_spec(name="a", lifespan=1, lastmodified=utc_now.replace(tzinfo=None)),
        "aware-live": make_spec(name="b", lifespan=1, lastmodified=utc_now.astimezone(east)),
        "naive-dead": make_spec(name="c", lifespan=1, lastmodified=old.replace(tzinfo=None)),
        "aware-dead": make_spec(name="d", lifespan=1, lastmodified=old.astimezone(east)),
    }
    mgr.specs.update(specs)
    mgr.apply()
    names = {i.name for i in active_probes["probe_targets.shop.price"].instruments.values()}
    assert names == {"a", "b"}
    assert all(s["applied"][PID]["err"] is None for s in specs.values())


def _expire_soon(seconds: float) -> tuple[dict[str, Any], float]:
    """Return a spec whose lifespan runs out in about seconds, and when (unix time)."""
    lifespan = 0.02  # minutes
    lastmodified = (
        now() - datetime.timedelta(minutes=lifespan) + datetime.timedelta(seconds=seconds)
    )
    return make_spec(
        lifespan=lifespan, lastmodified=lastmodified
    ), lastmodified.timestamp() + 60 * lifespan


def test_lifespan_expiry_detaches_at_next_apply(mgr: CapturingManager) -> None:
    """Once a spec's lifespan has run out, the next apply() puts the original code back."""
    original = shop.price.__code__
    spec, expiry = _expire_soon(0.3)
    mgr.specs["s1"] = spec
    mgr.apply()
    assert shop.price.__code__ is not original
    assert wait_for(lambda: time.time() > expiry + 0.01, timeout=5)
    mgr.apply()
    assert shop.price.__code__ is original
    assert spec["applied"][PID] == {"lm": spec["lastmodified"], "err": None}


def test_expired_instrument_stops_firing_without_apply(mgr: CapturingManager) -> None:
    """After its lifespan, an instrument never fires again, even before any apply()."""
    spec, expiry = _expire_soon(0.3)
    mgr.specs["s1"] = spec
    mgr.apply()
    inst = the_instrument("probe_targets.shop.price", "spec")
    assert wait_for(lambda: time.time() > expiry + 0.01, timeout=5)
    shop.price(1)
    assert inst.results == []


def test_background_apply_detaches_within_a_second_of_expiry(mgr: CapturingManager) -> None:
    """With apply_in_background running, an expired probe detaches within 1 s, with no call
    (checked against twice that, for a loaded machine)."""
    original = shop.price.__code__
    spec, expiry = _expire_soon(2.0)
    mgr.specs["s1"] = spec
    mgr.apply_in_background(period=60)
    assert wait_for(lambda: shop.price.__code__ is not original, timeout=5)
    detached = wait_for(
        lambda: shop.price.__code__ is original, timeout=max(0.0, expiry - time.time()) + 2.0
    )
    assert detached, "still attached 2 s after expiry"
    assert time.time() < expiry + 2.0, "detached, but over 2 s after expiry"
    assert "probe_targets.shop.price" not in active_probes


def test_background_apply_picks_up_a_second_expiry(mgr: CapturingManager) -> None:
    """apply_in_background detaches each of two specs as its own lifespan runs out."""
    first, first_expiry = _expire_soon(1.0)
    second, second_expiry = _expire_soon(2.0)
    first["target"] = "probe_targets.shop.add"
    first["instrument"]["value"] = "a"
    mgr.specs.update({"first": first, "second": second})
    add_code, price_code = shop.add.__code__, shop.price.__code__
    mgr.apply_in_background(period=60)
    assert wait_for(lambda: shop.price.__code__ is not price_code, timeout=5)
    assert wait_for(lambda: shop.add.__code__ is add_code, timeout=first_expiry - time.time() + 2)
    assert wait_for(
        lambda: shop.price.__code__ is price_code, timeout=second_expiry - time.time() + 2
    )


def test_runtime_error_shows_in_applied(mgr: CapturingManager) -> None:
    """An instrument that raises at run time reports its error in applied, and it stays there."""
    spec = make_spec(value="1 / amount")
    mgr.specs["s1"] = spec
    mgr.apply()
    assert shop.price(0) == 0
    err = spec["applied"][PID]["err"]
    assert err and "ZeroDivisionError" in err
    assert [i.name for _p, i, _e in mgr.errors] == ["spec"]
    mgr.apply()
    assert spec["applied"][PID]["err"] == err


def test_runtime_error_instrument_stays_silent_after_apply(mgr: CapturingManager) -> None:
    """An instrument that failed does not come back to life at the next apply()."""
    mgr.specs["s1"] = make_spec(value="10 // amount")
    mgr.apply()
    shop.price(0)
    mgr.apply()
    shop.price(0)
    shop.price(5)
    assert len(mgr.errors) == 1


def test_get_tags_are_added_to_every_instrument(
    mgr: CapturingManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tags from the manager's get_tags() come with every value an instrument keeps."""
    monkeypatch.setattr(mgr, "get_tags", lambda: {"host": "web-1"})
    mgr.specs["s1"] = make_spec(custom={"tags": "{'amount': amount}"})
    mgr.apply()
    shop.price(2)
    assert the_instrument("probe_targets.shop.price", "spec").log == [
        ({"host": "web-1", "amount": 2}, 4)
    ]


def test_get_tags_as_strings_still_merge(
    mgr: CapturingManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A get_tags() returning "key:value" strings (our older API) merges as a dict."""
    monkeypatch.setattr(mgr, "get_tags", lambda: ["host:web-1", "canary"])
    mgr.specs["s1"] = make_spec(custom={"tags": "{'amount': amount}"})
    mgr.apply()
    shop.price(2)
    assert the_instrument("probe_targets.shop.price", "spec").log == [
        ({"host": "web-1", "canary": None, "amount": 2}, 4)
    ]


def test_apply_does_not_walk_the_heap(
    mgr: CapturingManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply() never asks the garbage collector for referrers or objects (its cost is per spec)."""

    def forbidden(*args: object) -> None:
        raise AssertionError("apply() walked the heap")

    for name in ("get_referrers", "get_referents", "get_objects"):
        monkeypatch.setattr(gc, name, forbidden)
    mgr.specs["s1"] = make_spec()
    mgr.specs["s2"] = make_spec(target="probe_targets.elsewhere.price", name="other")
    mgr.apply()
    del mgr.specs["s1"]
    mgr.apply()
    assert mgr.specs["s2"]["applied"][PID]["err"] is None


def test_stop_background_ends_the_thread(mgr: CapturingManager) -> None:
    """stop_background() ends the apply_in_background thread."""
    mgr.apply_in_background(period=60)
    thread = mgr.apply_thread
    assert thread is not None and thread.is_alive()
    assert thread.daemon
    mgr.stop_background()
    assert wait_for(lambda: not thread.is_alive(), timeout=5)


def test_background_apply_applies_new_specs_each_period(mgr: CapturingManager) -> None:
    """apply_in_background applies specs added after it started, within its period."""
    mgr.apply_in_background(period=0.1)
    mgr.specs["s1"] = make_spec(value="amount")
    assert wait_for(lambda: PID in mgr.specs["s1"]["applied"], timeout=5)
    shop.price(3)
    assert the_instrument("probe_targets.shop.price", "spec").results == [3]


@pytest.mark.parametrize("event", ["call", "return", "end"])
def test_instrument_error_traceback_names_the_probe_not_other_code(
    event: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The logged traceback of a failing instrument never sends a reader to other code: a
    frame in the target's file (the probe's own, at the ``def`` line) is on a line of the
    target itself."""
    import inspect
    import logging

    mgr = diagnose.ProbeManager(process_id="tb-test")
    mgr.instrument_classes["test"] = ProbeTestInstrument
    mgr.specs["boom"] = make_spec(value="1 / 0", event=event)
    first = shop.price.__code__.co_firstlineno
    lines = range(first, first + len(inspect.getsource(shop.price).splitlines()))
    try:
        with caplog.at_level(logging.WARNING, logger="diagnose"):
            mgr.apply()
            assert shop.price(2) == 4
    finally:
        mgr.specs.clear()
        mgr.apply()
    [record] = [r for r in caplog.records if "failed and stopped firing" in r.getMessage()]
    text = record.getMessage()
    assert "ZeroDivisionError" in text
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text)
    assert frames, text
    assert ("<probe spec>", "<module>") in [(f, n) for f, _l, n in frames]
    for filename, line, name in frames:
        if filename == shop.__file__ or name == "price":
            assert filename == shop.__file__, text
            assert int(line) in lines, f"{filename}:{line} is not in price(): {text}"
