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

import diagnose
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


def measure(label: str, func, arg, bare: float, number: int, repeat: int) -> None:
    ns = per_call_ns(func, arg, number, repeat)
    print(f"{label:<44} {ns:9.1f} ns/call   {ns - bare:+8.1f} ns   x{ns / bare:5.2f}")


def overhead(number: int, repeat: int) -> None:
    target = "targets.add13"
    func = targets.add13
    bare = per_call_ns(func, 5, number, repeat)
    print(f"{'bare add13(arg)':<44} {bare:9.1f} ns/call")
    for event, value in (
        ("call", "arg"),
        ("return", "arg"),
        ("return", "result"),
        ("end", "output"),
        ("return", "elapsed"),
        ("return", "(args, kwargs)"),
    ):
        probe = probes.attach_to(target)
        probe.instruments["drop"] = DropInstrument("drop", value, event=event)
        probe.start()
        measure(f"{event} event, value {value!r}", func, 5, bare, number, repeat)
        probe.stop()
        probes.active_probes.pop(target, None)

    # An instrument of a spec has a budget (its evaluations timed, one in 64) and, for log
    # and snapshot, a rate limit. The budget here is too large to trip, so that the
    # bench's hot loop (more evaluation than a real spec may take) measures it without
    # tripping it.
    for event, value, rate in (
        ("call", "arg", None),
        ("return", "result", None),
        ("end", "output", None),
    ):
        probe = probes.attach_to(target)
        inst = DropInstrument("spec", value, event=event)
        inst.budget, inst.rate = 1000.0, rate
        probe.instruments["spec"] = inst
        probe.start()
        measure(f"{event} event, {value!r}, with the budget", func, 5, bare, number, repeat)
        probe.stop()
        probes.active_probes.pop(target, None)
    fleet_overhead(target, func, bare, number, repeat)
    probe = probes.attach_to(target)
    inst = DropInstrument("limited", "result")
    inst.budget, inst.rate = 1000.0, 100
    probe.instruments["limited"] = inst
    probe.start()
    measure("return, rate 100/s: an event over the rate", func, 5, bare, number, repeat)
    probe.stop()
    probes.active_probes.pop(target, None)

    import datetime

    probe = probes.attach_to(target)
    past = datetime.datetime(2000, 1, 1)
    probe.instruments["old"] = DropInstrument("old", "arg", expires=past)
    probe.start()
    measure("expired instrument", func, 5, bare, number, repeat)
    probe.stop()
    probes.active_probes.pop(target, None)

    probe = probes.attach_to(target)
    probe.instruments["drop"] = DropInstrument("drop", "arg")
    probe.start()
    func(5)
    probe.stop()
    probes.active_probes.pop(target, None)
    measure("after stop", func, 5, bare, number, repeat)
    # A second bare run, to show the noise between two runs of the same thing.
    measure("bare again (noise)", func, 5, bare, number, repeat)

    heavy = targets.line_heavy
    bare_heavy = per_call_ns(heavy, 50, number // 20, repeat)
    print(f"{'bare line_heavy(50)':<44} {bare_heavy:9.1f} ns/call")
    with diagnose.sensor("targets.line_heavy", "hotspots.worst.lineno"):
        measure("hotspots on line_heavy(50)", heavy, 50, bare_heavy, number // 20, repeat)


def exception_overhead(number: int, repeat: int) -> None:
    """Print what an exception probe costs a function that never raises, next to a return
    probe on the same function in this one run: both as a spec has them (a budget; the
    exception probe's default capture rate)."""
    target = "targets.add13"
    func = targets.add13
    bare = per_call_ns(func, 5, number, repeat)
    print(f"{'bare add13(arg)':<44} {bare:9.1f} ns/call")
    costs = {}
    for label, make in (
        ("return probe, 'result', with the budget", lambda: DropInstrument("ret", "result")),
        ("exception probe (never raises)", lambda: ExceptionInstrument("exc")),
    ):
        probe = probes.attach_to(target)
        inst = make()
        inst.budget, inst.rate = 1000.0, (1 if isinstance(inst, ExceptionInstrument) else None)
        probe.instruments["bench"] = inst
        probe.start()
        costs[label] = per_call_ns(func, 5, number, repeat)
        print(f"{label:<44} {costs[label]:9.1f} ns/call   {costs[label] - bare:+8.1f} ns")
        probe.stop()
        probes.active_probes.pop(target, None)
    over = (
        costs["exception probe (never raises)"] - costs["return probe, 'result', with the budget"]
    )
    print(f"{'exception probe over the return probe':<44} {over:+9.1f} ns/call   (bar: +50)")

    # A raise: counted every time, captured once (first 1), so this is the cost of counting.
    raising = targets.call_refuse
    bare_raise = per_call_ns(raising, 5, number // 10, repeat)
    print(f"{'bare raise (refuse(arg), caught)':<44} {bare_raise:9.1f} ns/call")
    probe = probes.attach_to("targets.refuse")
    inst = ExceptionInstrument("exc", custom={"first": 1})
    inst.budget, inst.rate = 1000.0, 1
    inst.emit = lambda name, capture: None  # type: ignore[method-assign]  # no output
    probe.instruments["bench"] = inst
    probe.start()
    raising(5)
    measure("exception probe, a raise counted", raising, 5, bare_raise, number // 10, repeat)
    probe.stop()
    probes.active_probes.pop("targets.refuse", None)


def fleet_overhead(target: str, func, bare: float, number: int, repeat: int) -> None:
    """Print what stats and distinct probes cost: on the target's thread (append the value
    to its group's queue), and per value in the flusher's thread (fold it: buckets, or the
    canonical form), each timed apart; the total is what the process spends per call."""
    import diagnose.instruments.stats as fleet

    # As a spec's instruments are: with the budget, no rate limit. The flusher folds: the
    # call never does (SPILL out of reach), so that the two costs are timed apart.
    spill, fleet.SPILL = fleet.SPILL, 1 << 62
    try:
        for label, cls, value, custom in (
            ("stats of 'result'", StatsInstrument, "result", {}),
            ("stats of 'elapsed'", StatsInstrument, "elapsed", {}),
            ("stats of 'result' --by 'arg % 4'", StatsInstrument, "result", {"by": "arg % 4"}),
            ("distinct of 'arg'", DistinctInstrument, "arg", {}),
            ("distinct of 'str(arg)'", DistinctInstrument, "str(arg)", {}),
        ):
            probe = probes.attach_to(target)
            inst = cls("fleet", value, custom=custom)
            inst.budget = 1000.0
            probe.instruments["fleet"] = inst
            probe.start()
            timer = timeit.Timer("f(a)", globals={"f": func, "a": 5})
            calls, folds = [], []
            for _ in range(repeat):
                calls.append(timer.timeit(number) / number * 1e9)
                start = time.perf_counter()
                inst.aggregate.fold()
                folds.append((time.perf_counter() - start) / number * 1e9)
            ns, fold = min(calls), min(folds)
            print(
                f"{'return, ' + label:<44} {ns:9.1f} ns/call   {ns - bare:+8.1f} ns   "
                f"x{ns / bare:5.2f}   fold {fold:5.1f} ns/value: total {ns - bare + fold:+6.1f} ns"
            )
            probe.stop()
            probes.active_probes.pop(target, None)
    finally:
        fleet.SPILL = spill


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
    print(f"Python {sys.version.split()[0]}, per-call cost (best of {repeat} x {number})")
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
