"""Rate limits, the evaluation budget and the counters of the fire gate."""

from __future__ import annotations

import datetime as dt
import gc
import io
import math
import time
import types
from typing import Any

import pytest

import diagnose
from diagnose import LogInstrument, ProbeManager, ProbeTestInstrument, SpecError
from diagnose._gate import budget
from diagnose._gate.gate import Gate
from probe_targets import shop

TARGET = "probe_targets.shop.price"


def spec(value: str = "result", type: str = "test", **custom: Any) -> dict[str, Any]:
    return {
        "target": TARGET,
        "instrument": {"type": type, "name": "lim", "value": value, "custom": custom},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
        "applied": {},
    }


def instrument(manager: ProbeManager, spec_id: str = "s") -> Any:
    return diagnose.probes.active_probes[TARGET].instruments[f"{manager.short_id}:{spec_id}"]


def hammer(seconds: float) -> tuple[int, float]:
    """Call the target as fast as possible for about seconds; return (calls, duration)."""
    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            shop.price(2)
        calls += 1000
    return calls, time.perf_counter() - start


def test_rate_limits_fires_per_second_and_counts_the_rest(manager: ProbeManager) -> None:
    """custom["rate"] caps fires in any one second; the events over it are counted."""
    manager.specs["s"] = spec(rate=50)
    manager.apply()
    calls, seconds = hammer(1.3)
    inst = instrument(manager)
    assert calls > 10_000
    fired = len(inst.results)
    assert 50 <= fired <= 50 * 2  # two windows of one second at most in 1.3 s
    assert manager.counters()["s"] == {"fired": fired, "dropped": calls - fired, "errors": 0}


def test_a_burst_under_the_rate_passes_whole(manager: ProbeManager) -> None:
    """Events under the rate are never dropped, however close together."""
    manager.specs["s"] = spec(rate=20)
    manager.apply()
    for amount in range(20):
        shop.price(amount)
    assert instrument(manager).results == [2 * a for a in range(20)]
    shop.price(1)
    assert manager.counters()["s"]["dropped"] == 1


def test_a_ring_resized_under_a_hot_path_never_reaches_the_target(manager: ProbeManager) -> None:
    """The rate is checked inline in the wrapper; when another thread shrinks the ring
    between its reads (the slot past the new end), the call still returns its own result
    and the instrument keeps firing."""
    manager.specs["s"] = spec(rate=20)
    manager.apply()
    for amount in range(15):
        shop.price(amount)
    inst = instrument(manager)
    stats = inst.stats
    assert stats.slot == 15
    stats.ring = [-math.inf] * 5  # what a reader sees mid-resize: the old slot, a new ring
    assert [shop.price(3) for _ in range(3)] == [6, 6, 6]
    assert manager.counters()["s"]["errors"] == 0 and inst.results[15:] == [6, 6, 6]
    assert stats.slot == 3  # the first admitted event took the ring's first place


def test_log_specs_default_to_100_per_second(
    manager: ProbeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log spec without a rate prints at most 100 lines a second of a hot target."""
    out = io.StringIO()
    monkeypatch.setattr(LogInstrument, "out", out)
    manager.specs["s"] = spec(type="log")
    manager.apply()
    calls, seconds = hammer(0.5)
    lines = out.getvalue().splitlines()
    assert 1 <= len(lines) <= 100
    assert manager.counters()["s"] == {
        "fired": len(lines),
        "dropped": calls - len(lines),
        "errors": 0,
    }


def test_metrics_and_instruments_in_code_are_not_limited(manager: ProbeManager) -> None:
    """hist and incr count every call; an instrument made in code has no limit either."""
    assert manager.default_rates.get("hist") is None and manager.default_rates.get("incr") is None
    with diagnose.sensor(TARGET) as s:
        for _ in range(500):
            shop.price(1)
    assert len(s.results) == 500


@pytest.mark.parametrize("bad", [0, -1, "10", True, float("inf"), 10**9])
def test_a_bad_rate_is_refused(bad: Any) -> None:
    """custom.rate must be a positive number of events per second, at most 10,000."""
    with pytest.raises(SpecError, match="custom.rate"):
        diagnose.validate_spec(spec(rate=bad))


@pytest.mark.parametrize("rate", [None, 100])
def test_a_slow_expression_is_disabled_by_its_budget(manager: ProbeManager, rate: Any) -> None:
    """Evaluations over 50 ms within one second disable the instrument; the status says
    budget exceeded, and the target's calls return their own results throughout."""
    custom = {"rate": rate} if rate else {}
    manager.specs["s"] = spec("sum(range(100_000)) and result", **custom)
    manager.apply()
    start = time.perf_counter()
    while time.perf_counter() - start < 10 and instrument(manager).error is None:
        assert shop.price(3) == 6
    inst = instrument(manager)
    assert inst.error is not None and "budget exceeded" in inst.error
    err = manager.specs["s"]["applied"][manager.process_id]["err"]
    assert "budget exceeded" in err and "limit 50 ms" in err
    fired = len(inst.results)
    for _ in range(100):
        assert shop.price(3) == 6
    assert len(inst.results) == fired  # disabled until the spec changes
    manager.specs["s"] = spec("result", **custom)
    manager.apply()
    shop.price(3)
    inst = instrument(manager)  # edited in place, as the original did: its log carries on
    assert inst.error is None and inst.results[fired:] == [6]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_sampling_charges_calls_spread_over_time_by_their_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 4 ms expression called once a minute never trips the budget; the same at 100
    calls a second does."""
    clock = FakeClock()
    monkeypatch.setattr(budget, "wall_clock", clock)
    monkeypatch.setattr(budget, "cpu_clock", clock)

    class Slow(ProbeTestInstrument):
        def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
            clock.now += 0.004
            super().fire(_globals, _locals)

    rare = Slow("rare", "result", mgr=diagnose.manager)
    rare.budget = budget.BUDGET_SECONDS
    gate = Gate(rare, None, lambda: None)
    for _ in range(100):
        clock.now += 60
        gate.fire({"result": 1})
    assert rare.error is None and rare.stats.fired == 100

    hot = Slow("hot", "result", mgr=diagnose.manager)
    hot.budget = budget.BUDGET_SECONDS
    gate = Gate(hot, None, lambda: None)
    for _ in range(100):
        clock.now += 0.006
        gate.fire({"result": 1})
        if hot.error:
            break
    assert hot.error is not None and "budget exceeded" in hot.error
    assert hot.stats.errors == 1


@pytest.mark.parametrize(
    ("cost", "timed_in"),
    [(1e-6, budget.SAMPLE), (0.5e-3, 11), (2e-3, 3), (10e-3, 1)],
)
def test_the_budget_times_slow_expressions_more_often(
    monkeypatch: pytest.MonkeyPatch, cost: float, timed_in: int
) -> None:
    """A cheap expression is timed once in SAMPLE evaluations; a slow one as often as keeps
    its untimed evaluations between two timings to about UNTIMED_SECONDS (a tenth of the
    budget), so that it cannot spend much more than its budget before it is caught."""
    clock = FakeClock()
    monkeypatch.setattr(budget, "wall_clock", clock)
    timings = []

    def cpu() -> float:
        timings.append(clock.now)
        return clock.now

    monkeypatch.setattr(budget, "cpu_clock", cpu)

    class Costly(ProbeTestInstrument):
        def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
            clock.now += cost
            super().fire(_globals, _locals)

    inst = Costly("c", "result", mgr=diagnose.manager)
    inst.budget = 1000.0  # never tripped: this is about how often it is timed
    gate = Gate(inst, None, lambda: None)
    calls = 3 * budget.SAMPLE
    for _ in range(calls):
        clock.now += 1.0  # spread out: never over the budget
        gate.fire({"result": 1})
    assert inst.error is None and inst.stats.fired == calls
    timed = len(timings) // 2  # two reads of the CPU clock per timed evaluation
    assert timed == -(-calls // timed_in)  # the first, then one in timed_in
    assert timed_in == 1 or (timed_in - 1) * cost <= budget.UNTIMED_SECONDS


def test_instruments_made_in_code_have_no_budget() -> None:
    """An instrument built in code is the programmer's own: a slow one is never disabled
    (the original's users' tests probe hot loops), and it is never even timed."""
    with diagnose.sensor(TARGET, "sum(range(20_000)) and result") as s:
        start = time.perf_counter()
        calls = 0
        while time.perf_counter() - start < 0.3:
            shop.price(3)
            calls += 1
    assert s.error is None and len(s.results) == calls
    assert s.stats.budget is None and s.stats.next_timed == float("inf")


def _collecting(clock: FakeClock, collects: Any) -> ProbeTestInstrument:
    """Return an instrument whose evaluations take 0.1 ms, and 200 ms more when
    collects(n) says its nth evaluation (from 0) runs a garbage collection."""

    class Collecting(ProbeTestInstrument):
        calls = 0

        def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
            clock.now += 0.0001
            if collects(Collecting.calls):
                gc.collect(0)
                clock.now += 0.2  # as long as a big gen-2 collection
            Collecting.calls += 1
            super().fire(_globals, _locals)

    inst = Collecting("gc", "result", mgr=diagnose.manager)
    inst.budget = budget.BUDGET_SECONDS
    return inst


def test_a_garbage_collection_is_not_charged_to_the_expression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Time the collector took during a timed evaluation is the process's, not the probe's:
    in the first evaluation (timed), nor in a later timed one."""
    clock = FakeClock()
    monkeypatch.setattr(budget, "wall_clock", clock)
    monkeypatch.setattr(budget, "cpu_clock", clock)
    inst = _collecting(clock, lambda n: n in (0, budget.SAMPLE + 1))
    gate = Gate(inst, None, lambda: None)
    for _ in range(2 * budget.SAMPLE):
        clock.now += 0.01
        gate.fire({"result": 1})
    assert inst.error is None and inst.results == [1] * (2 * budget.SAMPLE)
    assert gate.stats.spent < budget.BUDGET_SECONDS / 2


def test_an_expression_that_collects_every_time_is_charged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An evaluation that runs a collection every time (it allocates that much) is charged
    with it from its second evaluation on: the collections are its cost."""
    clock = FakeClock()
    monkeypatch.setattr(budget, "wall_clock", clock)
    monkeypatch.setattr(budget, "cpu_clock", clock)
    inst = _collecting(clock, lambda n: True)
    gate = Gate(inst, None, lambda: None)
    clock.now += 0.01
    gate.fire({"result": 1})
    assert inst.error is None and gate.stats.spent == 0.0  # the first is charged later
    clock.now += 0.01
    gate.fire({"result": 1})
    assert inst.error is not None and "budget exceeded: 200 ms" in inst.error


def test_importing_diagnose_adds_no_python_callback_to_the_collector() -> None:
    """A signal handler's exception raised inside a gc callback (Ctrl-C's KeyboardInterrupt
    in the host, a SIGTERM handler's SystemExit) is printed and lost: no module of ours may
    run Python code in every collection of the host."""
    import diagnose_redis  # noqa: F401

    python = [c for c in gc.callbacks if isinstance(c, (types.FunctionType, types.MethodType))]
    ours = [c for c in python if c.__module__.split(".")[0] in ("diagnose", "diagnose_redis")]
    assert ours == []


def test_time_the_thread_was_preempted_is_not_charged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget charges the thread's CPU time: on a saturated machine an evaluation that
    waited 200 ms for a core while using 0.1 ms of it is a cheap one."""
    wall, cpu = FakeClock(), FakeClock()
    monkeypatch.setattr(budget, "wall_clock", wall)
    monkeypatch.setattr(budget, "cpu_clock", cpu)

    class Preempted(ProbeTestInstrument):
        def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
            wall.now += 0.2
            cpu.now += 0.0001
            super().fire(_globals, _locals)

    inst = Preempted("busy", "result", mgr=diagnose.manager)
    inst.rate, inst.budget = 100, budget.BUDGET_SECONDS
    gate = Gate(inst, None, lambda: None)
    for _ in range(40):
        wall.now += 0.001
        gate.fire({"result": 1})
    assert inst.error is None and inst.stats.fired == 40
