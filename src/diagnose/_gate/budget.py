"""The evaluation budget: an instrument of a spec may spend BUDGET_SECONDS of evaluation
within one second of one process, or it is disabled until its spec changes.

Invariant: a timed evaluation is charged the smaller of its wall and thread-CPU time, less
the clocks' own cost, and never a garbage collection's time.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = (
    "BUDGET_SECONDS",
    "SAMPLE",
    "UNTIMED_SECONDS",
    "BudgetExceeded",
    "cpu_clock",
    "timed_fire",
    "wall_clock",
)

wall_clock = time.perf_counter
# The thread's CPU clock: preemption on a busy machine is not the expression's cost.
cpu_clock = time.thread_time


def _clock_cost(clock: Callable[[], float]) -> float:
    cost = 1.0
    for _ in range(50):
        a = clock()
        cost = min(cost, clock() - a)
    return cost


_CPU_COST = _clock_cost(cpu_clock)
_WALL_COST = _clock_cost(wall_clock)

# The info dict of the garbage collection that finished last (the collector makes a new one
# for each), kept by a builtin callback: no Python code may run in the host's collections,
# where a signal handler's exception (Ctrl-C's KeyboardInterrupt) would be printed and lost.
_collected: dict[str, Any] = {}
gc.callbacks.append(_collected.__setitem__)


#: Evaluation time an instrument may spend within one second of one process.
BUDGET_SECONDS = 0.050
#: An unlimited instrument times at most one evaluation in SAMPLE (a thread's CPU clock
#: is a system call: about 0.3 µs twice, so up to 256 calls share its cost) ...
SAMPLE = 256
#: ... and fewer when evaluations are slow: between two timings it evaluates untimed for
#: about this long at the cost the last two timings found (the larger).
UNTIMED_SECONDS = BUDGET_SECONDS / 10


class BudgetExceeded(Exception):
    """An instrument spent more than its evaluation budget; it is disabled."""


def timed_fire(stats: Any, instrument: Any, g: dict[str, Any], ns: Any) -> None:
    """Fire instrument once, timed, charge stats with the evaluations since the last timed
    one, and raise BudgetExceeded when the second's spend is over stats.budget."""
    collection = _collected.get("stop")
    c0 = cpu_clock()
    w0 = wall_clock()
    try:
        instrument.fire(g, ns)
    finally:
        t1 = wall_clock()
        c1 = cpu_clock()
        wall = t1 - w0 - _WALL_COST
        cpu = c1 - c0 - _CPU_COST
        elapsed = max(0.0, min(wall, cpu))
        fired = stats.fired + 1
        # A collection that ran meanwhile counts as long as the last timed evaluation;
        # the first one timed is charged only with the next.
        collected = _collected.get("stop") is not collection
        first = collected and not stats.timed_fired
        if collected:
            elapsed = min(elapsed, stats.last_elapsed)
        cost = max(elapsed, stats.last_elapsed if stats.timed_fired else 0.0)
        untimed = 0 if first else SAMPLE - 1
        if cost * untimed > UNTIMED_SECONDS:
            untimed = int(UNTIMED_SECONDS / cost)
        stats.next_timed = fired + untimed
        # The untimed evaluations took about the smaller of the last two timings each (a
        # preempted one counts once); spread over more than a second, only their share of
        # one second counts.
        count = fired - stats.timed_fired
        typical = min(elapsed, stats.last_elapsed)
        span = t1 - stats.last_timed
        charge = (elapsed + typical * (count - 1)) / (span if span > 1.0 else 1.0)
        if first:
            charge = 0.0
        stats.timed_fired, stats.last_timed, stats.last_elapsed = fired, t1, elapsed
        if t1 - stats.window >= 1.0:
            stats.window, stats.spent = t1, charge
        else:
            stats.spent += charge
    stats.fired += 1
    limit = stats.budget
    if limit is not None and stats.spent > limit:
        raise BudgetExceeded(
            f"budget exceeded: {stats.spent * 1000:.0f} ms of evaluation within 1 s "
            f"(limit {limit * 1000:.0f} ms); disabled until the spec changes"
        )
