"""Print the nanoseconds a probe adds per call over the bare function, measured in one run.

Run: python bench/probe_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import timeit
from pathlib import Path

from diagnose import Instrument, ProbeManager, probes
from diagnose.instruments import DistinctInstrument, ExceptionInstrument, StatsInstrument

sys.path.insert(0, str(Path(__file__).resolve().parent))
import targets  # noqa: E402


class DropInstrument(Instrument):
    """Evaluate the value and drop it: the cost of a probe, without any output."""

    def fire(self, _globals, _locals):
        self.evaluate(self.value, _globals, _locals)


def per_call_ns(func, arg, number: int, repeat: int) -> float:
    """Return the best per-call time of func(arg), in nanoseconds."""
    timer = timeit.Timer("f(a)", globals={"f": func, "a": arg})
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


class Case:
    """One row: what to attach (an instrument on a target, or nothing: the bare function),
    what to call, how many times; after() runs untimed after each timing (a fold)."""

    def __init__(self, label, func, arg, number, target=None, make=None, after=None):
        self.label, self.func, self.arg, self.number = label, func, arg, number
        self.target, self.make, self.after = target, make, after
        self.timer = timeit.Timer("f(a)", globals={"f": func, "a": arg})
        self.best = float("inf")
        self.best_after = float("inf")

    def time_once(self) -> None:
        probe = inst = None
        if self.make is not None:
            probe = probes.attach_to(self.target)
            inst = self.make()
            probe.instruments["bench"] = inst
            probe.start()
            self.func(self.arg)  # the first call of a new wrapper is not the steady state
        try:
            self.best = min(self.best, self.timer.timeit(self.number) / self.number * 1e9)
            if self.after is not None:
                start = time.perf_counter()
                self.after(inst)
                took = (time.perf_counter() - start) / self.number * 1e9
                self.best_after = min(self.best_after, took)
        finally:
            if probe is not None:
                probe.stop()
                probes.active_probes.pop(self.target, None)


def run_interleaved(cases: list[Case], repeat: int) -> None:
    """Time every case once per round, the rounds in turn, and keep each case's best: a
    slow stretch of the machine (another process, a busy neighbour) then costs each case
    one round, not one case all its rounds."""
    for _ in range(repeat):
        for case in cases:
            case.time_once()


def row(label: str, ns: float, bare: float, extra: str = "") -> None:
    print(f"{label:<44} {ns:9.1f} ns/call   {ns - bare:+8.1f} ns   x{ns / bare:5.2f}{extra}")


def drop(name, value, event="return", budget=None, rate=None, **kw):
    """Return a maker of a DropInstrument (with a spec's budget and rate when given)."""

    def make():
        inst = DropInstrument(name, value, event=event, **kw)
        if budget is not None:
            inst.budget, inst.rate = budget, rate
        return inst

    return make


def overhead(number: int, repeat: int) -> None:
    import datetime

    import diagnose.instruments.stats as fleet

    target, func = "targets.add13", targets.add13
    cases = [Case("bare add13(arg)", func, 5, number)]
    for event, value in (
        ("call", "arg"),
        ("return", "arg"),
        ("return", "result"),
        ("end", "output"),
        ("return", "elapsed"),
        ("return", "(args, kwargs)"),
    ):
        label = f"{event} event, value {value!r}"
        cases.append(Case(label, func, 5, number, target, drop("drop", value, event)))
    # An instrument of a spec has a budget (its evaluations timed, one in 64) and, for log
    # and snapshot, a rate limit. The budget here is too large to trip, so that the
    # bench's hot loop (more evaluation than a real spec may take) measures it without
    # tripping it.
    for event, value in (("call", "arg"), ("return", "result"), ("end", "output")):
        label = f"{event} event, {value!r}, with the budget"
        cases.append(Case(label, func, 5, number, target, drop("spec", value, event, 1000.0)))
    # Stats and distinct: on the target's thread, the value appended to its group's queue;
    # per value in the flusher's thread, folded (buckets, or the canonical form), timed
    # apart (after each timing); the total is what the process spends per call. As a
    # spec's instruments are: with the budget, no rate limit.
    for label, cls, value, custom in (
        ("stats of 'result'", StatsInstrument, "result", {}),
        ("stats of 'elapsed'", StatsInstrument, "elapsed", {}),
        ("stats of 'result' --by 'arg % 4'", StatsInstrument, "result", {"by": "arg % 4"}),
        ("distinct of 'arg'", DistinctInstrument, "arg", {}),
        ("distinct of 'str(arg)'", DistinctInstrument, "str(arg)", {}),
    ):

        def make(cls=cls, value=value, custom=custom):
            inst = cls("fleet", value, custom=custom)
            inst.budget = 1000.0
            return inst

        def fold(inst):
            inst.aggregate.fold()

        cases.append(Case("return, " + label, func, 5, number, target, make, fold))
    cases.append(
        Case(
            "return, rate 100/s: an event over the rate",
            func, 5, number, target, drop("limited", "result", budget=1000.0, rate=100),
        )
    )  # fmt: skip
    past = datetime.datetime(2000, 1, 1)
    cases.append(
        Case("expired instrument", func, 5, number, target, drop("old", "arg", expires=past))
    )
    cases.append(Case("bare again (noise)", func, 5, number))
    heavy = targets.line_heavy
    cases.append(Case("bare line_heavy(50)", heavy, 50, number // 20))
    cases.append(
        Case(
            "hotspots on line_heavy(50)", heavy, 50, number // 20, "targets.line_heavy",
            drop("hot", "hotspots.worst.lineno"),
        )
    )  # fmt: skip
    # The folds must not run on the call: SPILL out of reach, so the two are timed apart.
    spill, fleet.SPILL = fleet.SPILL, 1 << 62
    try:
        run_interleaved(cases, repeat)
    finally:
        fleet.SPILL = spill
    # After a probe stopped: the original function is back (measured last, once more).
    probe = probes.attach_to(target)
    probe.instruments["drop"] = DropInstrument("drop", "arg")
    probe.start()
    func(5)
    probe.stop()
    probes.active_probes.pop(target, None)
    after_stop = per_call_ns(func, 5, number, repeat)

    bare = cases[0].best
    bare_heavy = 0.0
    for case in cases:
        if case.label == "bare add13(arg)":
            print(f"{case.label:<44} {case.best:9.1f} ns/call")
        elif case.label == "bare line_heavy(50)":
            bare_heavy = case.best
            print(f"{case.label:<44} {case.best:9.1f} ns/call")
        elif case.label.startswith("hotspots"):
            row(case.label, case.best, bare_heavy)
        elif case.after is not None:
            fold = case.best_after
            extra = f"   fold {fold:5.1f} ns/value: total {case.best - bare + fold:+6.1f} ns"
            row(case.label, case.best, bare, extra)
        else:
            row(case.label, case.best, bare)
        if case.label == "expired instrument":
            row("after stop", after_stop, bare)


def exception_overhead(number: int, repeat: int) -> None:
    """Print what an exception probe costs a function that never raises, next to a return
    probe on the same function in this one run: both as a spec has them (a budget; the
    exception probe's default capture rate)."""
    target, func = "targets.add13", targets.add13

    def exception_probe():
        inst = ExceptionInstrument("exc")
        inst.budget, inst.rate = 1000.0, 1
        return inst

    def counting():
        # A raise: counted every time, captured once (first 1): the cost of counting.
        inst = ExceptionInstrument("exc", custom={"first": 1})
        inst.budget, inst.rate = 1000.0, 1
        inst.emit = lambda name, capture: None  # type: ignore[method-assign]  # no output
        return inst

    raising = targets.call_refuse
    ret = "return probe, 'result', with the budget"
    exc = "exception probe (never raises)"
    cases = [
        Case("bare add13(arg)", func, 5, number),
        Case(ret, func, 5, number, target, drop("ret", "result", budget=1000.0)),
        Case(exc, func, 5, number, target, exception_probe),
        Case("bare raise (refuse(arg), caught)", raising, 5, number // 10),
        Case(
            "exception probe, a raise counted", raising, 5, number // 10, "targets.refuse",
            counting,
        ),
    ]  # fmt: skip
    run_interleaved(cases, repeat)
    bare, bare_raise = cases[0].best, cases[3].best
    print(f"{cases[0].label:<44} {bare:9.1f} ns/call")
    for case in cases[1:3]:
        print(f"{case.label:<44} {case.best:9.1f} ns/call   {case.best - bare:+8.1f} ns")
    print(
        f"{'exception probe over the return probe':<44} {cases[2].best - cases[1].best:+9.1f}"
        " ns/call   (bar: +50)"
    )
    print(f"{cases[3].label:<44} {bare_raise:9.1f} ns/call")
    row(cases[4].label, cases[4].best, bare_raise)


def apply_ms(extra_objects: int, specs: int = 10, rounds: int = 20) -> float:
    """Return the median time of ProbeManager.apply() with specs changed each round."""
    import datetime

    ballast = [object() for _ in range(extra_objects)]
    mgr = ProbeManager(process_id="bench")
    now = datetime.datetime.now(datetime.UTC)
    for i in range(specs):
        mgr.specs[f"s{i}"] = {
            "target": f"targets.f{i % 5}",
            "instrument": {"type": "log", "name": f"s{i}", "value": "arg", "event": "return"},
            "lifespan": 10,
            "lastmodified": now,
            "applied": {},
        }
    times = []
    for r in range(rounds):
        spec = mgr.specs[f"s{r % specs}"]
        spec["lastmodified"] = now + datetime.timedelta(seconds=r + 1)
        start = time.perf_counter()
        mgr.apply()
        times.append(time.perf_counter() - start)
    mgr.specs.clear()
    mgr.apply()
    del ballast
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    opts = parser.parse_args()
    number, repeat = (20_000, 3) if opts.quick else (200_000, 7)
    gc.collect()
    print(
        f"Python {sys.version.split()[0]}, per-call cost (best of {repeat} rounds x {number},"
        " the rows interleaved)"
    )
    overhead(number, repeat)
    print()
    print("Exception replay on a function that never raises:")
    exception_overhead(number, repeat)
    print()
    print("ProbeManager.apply(), 10 specs, one changed per apply (median of 20):")
    for extra in (0, 1_000_000):
        print(f"  with {extra:>9,} extra live objects: {apply_ms(extra):6.3f} ms")


if __name__ == "__main__":
    main()
