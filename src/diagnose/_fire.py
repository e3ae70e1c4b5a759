"""The one fire gate: whether an instrument fires for an event, and how.

Every way an instrument can fire goes through a Gate: the generated wrapper runs the
gate's lines (``Gate.lines``) for call and return events (also when the target
raised), the end hook calls ``gate.fire_in_frame(...)`` inside the target, and
``gate.finish()`` runs after each call. The lines are the gate's own: for the common
gate (no check_call, no rate limit) they inline the untimed evaluation, one counter
and a compare, and call ``gate.fire`` for everything else; the decision of whether and
how to fire is written once, here, in this order:

1. ``check_call`` (when the instrument or its manager overrides it);
2. the rate limit: at most ``instrument.rate`` fires in any one second (a ring of the
   last ``rate`` fire times: a fire is allowed when the oldest is a second old), so a
   burst up to the rate passes whole and a hot path costs one clock read per call;
   events over it are dropped and counted, never queued;
3. the evaluation (``instrument.fire``), with the namespaces its expressions need;
4. the budget (instruments of specs; those made in code are the programmer's own): an
   instrument whose evaluations take over BUDGET_SECONDS within one second is disabled
   (``BudgetExceeded``) until its spec changes. Timing every call
   would cost two clock reads per call, so a gate times (in CPU time of its thread, so
   that preemption on a busy machine is not charged) one evaluation in up to SAMPLE,
   fewer when evaluations are slow (untimed ones take about UNTIMED_SECONDS between two
   timings, at the cost the last timings found), and charges it for the calls since the
   last timed one, spread over the time they took; time the garbage collector took
   meanwhile is not charged, and one slow timing (the thread preempted) stands for
   itself only;
5. errors: any exception stops the instrument (``handle_error``) and never reaches
   the target's caller.

Counts of fired, dropped and failed events are kept on the instrument (``stats``), for
its spec's status. A Gate belongs to one plan (the instruments live on one function
at one time): the plan's records live on the gate, never on the instrument, which may
sit on several functions. The gates of one instrument share its rate ring and budget
through its ``stats``. Races between threads can let a few extra events through the
rate limit; they never block a thread.
"""

from __future__ import annotations

import gc
import math
import time
import types
from collections.abc import Callable
from typing import Any

__all__ = (
    "BUDGET_SECONDS",
    "MAX_RATE",
    "SAMPLE",
    "UNTIMED_SECONDS",
    "BudgetExceeded",
    "Gate",
    "Site",
    "Stats",
)

_NO_KWARGS: dict[str, Any] = {}
_clock = time.perf_counter
# What a timed evaluation is charged: the smaller of its wall time and the CPU time of its
# thread, so that a thread the machine preempts (a busy host, a loaded CI) is not taken for
# a slow expression. The thread's CPU clock is a system call that costs far more than a
# small expression: its own cost (the least of a few back-to-back reads) is taken off.
_cpu = time.thread_time


def _clock_cost(clock: Callable[[], float]) -> float:
    cost = 1.0
    for _ in range(50):
        a = clock()
        cost = min(cost, clock() - a)
    return cost


_CPU_COST = _clock_cost(_cpu)
_WALL_COST = _clock_cost(_clock)

# Under "stop", the info dict of the garbage collection that finished last (the collector
# makes a new one for each): a timed evaluation tells whether one ran meanwhile. The callback
# is a builtin, so no Python code runs in the host's collections: a signal handler's
# exception raised inside a Python callback (Ctrl-C's KeyboardInterrupt, a SIGTERM handler's
# SystemExit) would be printed and lost. How long the collection took is not known, then.
_collected: dict[str, Any] = {}
gc.callbacks.append(_collected.__setitem__)


#: Evaluation time an instrument may spend within one second of one process.
BUDGET_SECONDS = 0.050
#: The highest rate a spec may ask for (events per second per process).
MAX_RATE = 10_000
#: An unlimited instrument times at most one evaluation in SAMPLE (a thread's CPU clock
#: is a system call: about 0.3 µs twice, so up to 256 calls share its cost) ...
SAMPLE = 256
#: ... and fewer when evaluations are slow: between two timings it evaluates untimed for
#: about this long at the cost the last two timings found (the larger), so that a slow
#: expression spends at most a tenth of its budget before it is timed again.
UNTIMED_SECONDS = BUDGET_SECONDS / 10


class BudgetExceeded(Exception):
    """An instrument spent more than its evaluation budget; it is disabled."""


class Stats:
    """What one instrument did in this process: fired, dropped (over its rate), errors;
    and the state its rate limit and budget share across the functions it sits on."""

    __slots__ = (
        "budget",
        "dropped",
        "errors",
        "fired",
        "last_elapsed",
        "last_timed",
        "next_timed",
        "period",
        "ring",
        "slot",
        "spent",
        "timed_fired",
        "window",
    )

    def __init__(self, rate: float | None = None, budget: float | None = None) -> None:
        self.fired = self.dropped = self.errors = 0
        self.set_rate(rate)
        self.set_budget(budget)
        self.timed_fired = 0
        self.last_timed = self.window = _clock()
        self.spent = 0.0
        self.last_elapsed = math.inf

    def set_rate(self, rate: float | None) -> None:
        """Allow at most rate fires per second (None: no limit)."""
        if rate is None:
            self.ring: list[float] | None = None
            self.period = 1.0
        else:
            size = max(1, math.floor(rate))
            # rate < 1: one fire per 1/rate seconds
            self.period = 1.0 if rate >= 1 else 1.0 / rate
            self.ring = [-math.inf] * size
        self.slot = 0

    def set_budget(self, budget: float | None) -> None:
        """Disable the instrument when its evaluations take over budget seconds within one
        second (None: no budget, and no timing)."""
        self.budget = budget
        # The budget's sampling: the next evaluation is timed when fired reaches next_timed.
        self.next_timed: float = 0 if budget is not None else math.inf

    def as_dict(self) -> dict[str, int]:
        return {"fired": self.fired, "dropped": self.dropped, "errors": self.errors}


class Gate:
    """One instrument of one probe on one patched function."""

    __slots__ = (
        "checks_calls",
        "direct",
        "finishes",
        "instrument",
        "nested",
        "on_error",
        "probe",
        "stats",
    )

    def __init__(self, instrument: Any, probe: Any, on_error: Callable[[], None]) -> None:
        self.instrument = instrument
        self.probe = probe
        #: called (to re-plan) after the instrument handled an error and stopped firing
        self.on_error = on_error
        self.checks_calls: bool = instrument.checks_calls()
        self.nested: bool = instrument.nested_scopes()
        self.finishes = _overrides(instrument, "finish")
        self.stats: Stats = instrument.stats
        #: a hook may fire it inline (set by its Site)
        self.direct = False

    @property
    def simple(self) -> bool:
        """True when the wrapper may inline the untimed evaluation (see ``lines``)."""
        return not (self.checks_calls or self.nested or self.stats.ring is not None)

    def lines(
        self, const: Callable[[str, Any], str], name: str, args: str, kwargs: str
    ) -> list[str]:
        """Return the wrapper's lines that fire this gate with the event's names in
        ``_dgn_ns`` (``args``/``kwargs`` give the call's arguments in the wrapper);
        ``const(name, value)`` gives the expression that loads a constant they use."""
        gate = const(f"{name}g", self)
        if self.stats.ring is not None and not (self.checks_calls or self.nested):
            # The rate limit's verdict inline: an event over it (on a hot path, nearly
            # every one) costs a clock read and a count. One it admits goes through
            # fire(), which takes its place in the ring. A ring resized by another
            # thread meanwhile (IndexError) leaves the verdict to fire() too.
            st, clock = const(f"{name}s", self.stats), const(f"{name}c", time)
            return [
                "try:",
                f"    _dgn_d = {clock}.perf_counter() - {st}.ring[{st}.slot] < {st}.period",
                "except Exception:",
                "    _dgn_d = False",
                "if _dgn_d:",
                f"    {st}.dropped += 1",
                "else:",
                f"    {gate}.fire(_dgn_ns)",
            ]
        if not self.simple:
            if self.checks_calls:
                return [f"{gate}.fire(_dgn_ns, {args}, {kwargs})"]
            return [f"{gate}.fire(_dgn_ns)"]
        inst = const(f"{name}i", self.instrument)
        if self.stats.budget is None:
            # An instrument made in code: no budget, no counters to report; the least code.
            return [
                "try:",
                f"    {inst}.fire({inst}.mgr.global_namespace, _dgn_ns)",
                "except KeyboardInterrupt:",
                "    raise",
                "except BaseException:",
                f"    {gate}.failed()",
            ]
        st = const(f"{name}s", self.stats)
        return [
            f"if {st}.fired < {st}.next_timed:",
            "    try:",
            f"        {inst}.fire({inst}.mgr.global_namespace, _dgn_ns)",
            f"        {st}.fired += 1",
            "    except KeyboardInterrupt:",
            "        raise",
            "    except BaseException:",
            f"        {gate}.failed()",
            "else:",
            f"    {gate}.fire(_dgn_ns)",
        ]

    def _admit(self) -> bool:
        """Return True if the rate limit lets one more event through now (and count it),
        False to drop it (counted)."""
        stats = self.stats
        ring = stats.ring
        if ring is None:
            return True
        now = _clock()
        slot = stats.slot
        if slot >= len(ring):  # resized by another thread meanwhile
            slot = 0
        if now - ring[slot] < stats.period:
            stats.dropped += 1
            return False
        ring[slot] = now
        slot += 1
        stats.slot = 0 if slot == len(ring) else slot
        return True

    def _evaluate(self, g: dict[str, Any], ns: Any) -> None:
        """Run the instrument, timing one evaluation in up to SAMPLE against the budget."""
        stats = self.stats
        if stats.fired < stats.next_timed:
            self.instrument.fire(g, ns)
            stats.fired += 1
            return
        collection = _collected.get("stop")
        c0 = _cpu()
        w0 = _clock()
        try:
            self.instrument.fire(g, ns)
        finally:
            t1 = _clock()
            c1 = _cpu()
            # The clocks' own cost is not the expression's.
            wall = t1 - w0 - _WALL_COST
            cpu = c1 - c0 - _CPU_COST
            elapsed = max(0.0, min(wall, cpu))
            fired = stats.fired + 1
            # A garbage collection that ran meanwhile is the process's cost, not the
            # expression's: the evaluation counts as long as the last timed one, if that
            # was shorter; the first one timed is charged only with the next, timed too.
            collected = _collected.get("stop") is not collection
            first = collected and not stats.timed_fired
            if collected:
                elapsed = min(elapsed, stats.last_elapsed)
            # How many evaluations go untimed before the next timed one.
            cost = max(elapsed, stats.last_elapsed if stats.timed_fired else 0.0)
            untimed = 0 if first else SAMPLE - 1
            if cost * untimed > UNTIMED_SECONDS:
                untimed = int(UNTIMED_SECONDS / cost)
            stats.next_timed = fired + untimed
            # The evaluations since the last timed one took about as long each (the
            # smaller of the last two timings, so that one evaluation the thread was
            # preempted in counts once, not once per evaluation it stands for); when they
            # were spread over more than a second, only their share per second counts.
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
        budget = stats.budget
        if budget is not None and stats.spent > budget:
            raise BudgetExceeded(
                f"budget exceeded: {stats.spent * 1000:.0f} ms of evaluation within 1 s "
                f"(limit {budget * 1000:.0f} ms); disabled until the spec changes"
            )

    def fire(
        self,
        ns: dict[str, Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] = _NO_KWARGS,
    ) -> None:
        """Fire for a call or return event, with the event's names in ns. args and kwargs
        are the call's, passed only when check_call matters (checks_calls)."""
        instrument = self.instrument
        try:
            if self.checks_calls and not instrument.check_call(self.probe, *args, **kwargs):
                return
            if self.stats.ring is not None and not self._admit():
                return
            gns = instrument.mgr.global_namespace
            if self.nested:
                # A comprehension's body looks names up in its globals only.
                merged = dict(gns)
                merged.update(ns)
                self._evaluate(merged, merged)
            else:
                self._evaluate(gns, ns)
        except KeyboardInterrupt:
            raise
        except BaseException:
            self.failed()

    def fire_in_frame(
        self, f_globals: dict[str, Any], f_locals: Any, other_names: frozenset[str] | None
    ) -> None:
        """Fire for an end event, inside the target's frame: its globals and locals, plus
        the manager's global_namespace when the expression reads names that are not locals
        (other_names; None when it may read any name)."""
        instrument = self.instrument
        try:
            gns = instrument.mgr.global_namespace
            g = f_globals
            if self.nested:
                g = ns = {**f_globals, **gns, **f_locals}
            elif other_names is None or (other_names and not gns.keys().isdisjoint(other_names)):
                ns = {**gns, **f_locals}
            else:
                ns = f_locals
            if self.checks_calls and not instrument.check_call(self.probe):
                return
            stats = self.stats
            if stats.ring is None and stats.budget is None:
                instrument.fire(g, ns)  # made in code: nothing to count or time
                return
            if stats.ring is not None and not self._admit():
                return
            self._evaluate(g, ns)
        except KeyboardInterrupt:
            raise
        except BaseException:
            self.failed()

    def finish(self) -> None:
        """Call the instrument's finish() after a call of the target."""
        try:
            self.instrument.finish()
        except KeyboardInterrupt:
            raise
        except BaseException:
            self.failed()

    def failed(self) -> None:
        """Hand the error being handled to the instrument (it stops firing), then re-plan."""
        self.stats.errors += 1
        try:
            self.instrument.handle_error(self.probe)
        except Exception:
            pass
        self.on_error()


class Site:
    """The gates that fire at one place inside the target (before it returns, or at one
    line), with what they read there: names outside its locals (``other_names``; None
    when they may read any name), and whether ``frame`` is one of them."""

    __slots__ = ("gates", "other_names", "with_frame")

    def __init__(
        self, gates: list[Gate], other_names: frozenset[str] | None, with_frame: bool
    ) -> None:
        self.gates = gates
        self.other_names = other_names
        self.with_frame = with_frame
        for gate in gates:
            # The common case, which a hook runs inline: a gate with nothing to check
            # that reads only the frame's locals, evaluated with the frame's own dicts.
            gate.direct = gate.simple and other_names == frozenset()

    def fire(self, frame: types.FrameType) -> None:
        """Fire the gates in the target's frame (where it raised: a hook does the same
        inline, see ``_patch``)."""
        f_globals = frame.f_globals
        f_locals: Any = frame.f_locals
        if self.with_frame:
            f_locals = {**f_locals, "frame": frame}
        for gate in self.gates:
            gate.fire_in_frame(f_globals, f_locals, self.other_names)


def _overrides(instrument: Any, name: str) -> bool:
    """Return True when instrument's method name is not the base class's no-op (a
    subclass's, or one set on the instance)."""
    method = getattr(instrument, name, None)
    func = getattr(method, "__func__", method)
    return not getattr(func, "_diagnose_noop", False)
