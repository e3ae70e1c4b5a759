"""Print what probe output costs the target: a log probe whose output goes to the stream, and
line probes, each as nanoseconds added per call over the bare function, measured in one run.

Run: python bench/output_overhead.py [--quick]

- A log probe of a spec (value ``result`` of ``add13``) with DIAGNOSE_OUTPUT=redis: the rate
  limit, the evaluation, the redaction (``render``) and the append to the outbox, as the
  subscriber's instruments run them. A log spec fires at most 100 times a second, so on a
  hot path nearly every call is dropped by the rate limit: both are measured, a dropped call
  (the ring full) and an emitted one (a burst the rate lets through, outbox drained between
  bursts).
- A line probe (an instrument that evaluates its value and drops it) on a line of ``add13``
  that runs once per call, and on a line of ``skipped_line`` that never runs while the
  function executes 300 other lines per call (the cost per line executed).
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import sys
import time
import timeit
from pathlib import Path

from diagnose import Instrument, ProbeManager, probes
from diagnose.outbox import OUTBOX

sys.path.insert(0, str(Path(__file__).resolve().parent))
import targets  # noqa: E402


class DropInstrument(Instrument):
    """Evaluate the value and drop it: the cost of a probe, without any output."""

    def fire(self, _globals, _locals):
        self.evaluate(self.value, _globals, _locals)


def per_call_ns(func, arg, number: int, repeat: int, before=None) -> float:
    """Return the best per-call time of func(arg), in nanoseconds (before() runs untimed
    ahead of each repeat)."""
    timer = timeit.Timer("f(a)", globals={"f": func, "a": arg})
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        best = min(best, timer.timeit(number) / number)
    return best * 1e9


def line_of(func, mark: str) -> int:
    source, first = inspect.getsourcelines(func)
    return first + next(i for i, text in enumerate(source) if mark in text)


def show(label: str, ns: float, bare: float, per: str = "call") -> None:
    print(f"{label:<58} {ns:9.1f} ns/{per}   {ns - bare:+8.1f} ns")


def log_probe(number: int, repeat: int) -> None:
    func = targets.add13
    bare = per_call_ns(func, 5, number, repeat)
    show("bare add13(arg)", bare, bare)
    # For scale: the plain probe of make bench (no rate limit, no output) in this run.
    probe = probes.attach_to("targets.add13")
    probe.instruments["drop"] = DropInstrument("drop", "result")
    probe.start()
    show(
        "for scale: a return probe, value result, no output",
        per_call_ns(func, 5, number, repeat),
        bare,
    )
    probe.stop()
    probes.active_probes.pop("targets.add13", None)
    mgr = ProbeManager(process_id="bench")
    mgr.specs["out"] = {
        "target": "targets.add13",
        "instrument": {"type": "log", "name": "out", "value": "result", "event": "return"},
        "lifespan": 10,
        "lastmodified": datetime.datetime.now(datetime.UTC),
        "applied": {},
    }
    mgr.apply()
    assert mgr.specs["out"]["applied"]["bench"]["err"] is None, mgr.specs["out"]["applied"]
    instrument = probes.active_probes["targets.add13"].instruments[f"{mgr.short_id}:out"]
    # A burst of 10,000 evaluations in a second is over the 50 ms budget on a slow machine;
    # the budget's timing is still paid, its verdict is not the bench's business.
    instrument.budget = 10.0
    OUTBOX.stdout = False  # DIAGNOSE_OUTPUT=redis
    OUTBOX.open()

    def fill_ring() -> None:
        instrument.stats.set_rate(100)
        for _ in range(100):
            func(5)
        OUTBOX.take(1_000_000)

    dropped = per_call_ns(func, 5, number, repeat, before=fill_ring)
    show("log spec, output redis: dropped by the rate limit (100/s)", dropped, bare)

    burst = 10_000

    def open_ring() -> None:
        # A fresh ring lets the next `burst` calls through; the outbox starts empty.
        instrument.stats.set_rate(burst)
        OUTBOX.take(1_000_000)

    emitted = per_call_ns(func, 5, burst, repeat * 3, before=open_ring)
    assert len(OUTBOX) == burst and not OUTBOX.dropped, (len(OUTBOX), OUTBOX.dropped)
    entry = OUTBOX.take(1)[0]
    show("log spec, output redis: emitted (evaluated, rendered, queued)", emitted, bare)
    print(f"{'':<4}an entry: {entry}")
    OUTBOX.close()
    OUTBOX.clear()
    mgr.specs.clear()
    mgr.apply()


def line_probes(number: int, repeat: int) -> None:
    func = targets.add13
    bare = per_call_ns(func, 5, number, repeat)
    show("bare add13(arg)", bare, bare)
    line = line_of(func, "output = arg + extra")
    probe = probes.attach_to("targets.add13")
    probe.instruments["l"] = DropInstrument("l", "extra", event="line", line=line)
    probe.start()
    show(
        f"line probe on the line that runs (add13 line {line})",
        per_call_ns(func, 5, number, repeat),
        bare,
    )
    probe.stop()
    probes.active_probes.pop("targets.add13", None)

    func = targets.skipped_line
    n = 100
    lines_run = 3 * n + 3  # for, total += i, if: per pass; and the first, the last lines
    bare = per_call_ns(func, n, number // 50, repeat) / lines_run
    show(f"bare skipped_line({n}), per line executed", bare, bare, "line")
    line = line_of(func, "never runs")
    probe = probes.attach_to("targets.skipped_line")
    probe.instruments["l"] = DropInstrument("l", "total", event="line", line=line)
    probe.start()
    with_probe = per_call_ns(func, n, number // 50, repeat) / lines_run
    show("line probe on a line that does not run, per line executed", with_probe, bare, "line")
    probe.stop()
    probes.active_probes.pop("targets.skipped_line", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    opts = parser.parse_args()
    number, repeat = (20_000, 3) if opts.quick else (200_000, 7)
    print(f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}")
    log_probe(number, repeat)
    line_probes(number, repeat)


if __name__ == "__main__":
    main()
