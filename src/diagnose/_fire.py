"""The one fire gate: whether an instrument fires for an event, and how.

Every way an instrument can fire goes through a Gate: the generated wrapper calls
``gate.fire(ns)`` for call and return events (also when the target raised), the end
hook calls ``gate.fire_in_frame(...)`` inside the target, and ``gate.finish()`` runs
after each call. So what decides firing is written once, here, in this order:

1. ``check_call`` (when the instrument or its manager overrides it);
2. the rate limit: at most ``instrument.rate`` fires in any one second (a ring of the
   last ``rate`` fire times: a fire is allowed when the oldest is a second old), so a
   burst up to the rate passes whole and a hot path costs one clock read per call;
   events over it are dropped and counted, never queued;
3. the evaluation (``instrument.fire``), with the namespaces its expressions need;
4. the budget: an instrument whose evaluations take over BUDGET_SECONDS within one
   second is disabled (``BudgetExceeded``) until its spec changes. Timing every call
   would cost two clock reads per call, so a gate times one evaluation in SAMPLE
   (every one for rate-limited instruments, which fire rarely) and charges it for the
   calls since the last timed one, spread over the time they took;
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

import math
import time
import types
from collections.abc import Callable
from typing import Any

__all__ = ("BUDGET_SECONDS", "MAX_RATE", "BudgetExceeded", "Gate", "Stats", "fire_end")

_NO_KWARGS: dict[str, Any] = {}
_clock = time.perf_counter

#: Evaluation time an instrument may spend within one second of one process.
BUDGET_SECONDS = 0.050
#: The highest rate a spec may ask for (events per second per process).
MAX_RATE = 10_000
#: An unlimited instrument times one evaluation in SAMPLE.
SAMPLE = 16


class BudgetExceeded(Exception):
    """An instrument spent more than its evaluation budget; it is disabled."""


class Stats:
    """What one instrument did in this process: fired, dropped (over its rate), errors;
    and the state its rate limit and budget share across the functions it sits on."""

    __slots__ = (
        "calls",
        "dropped",
        "errors",
        "fired",
        "last_timed",
        "next_timed",
        "period",
        "ring",
        "slot",
        "spent",
        "timed_calls",
        "window",
    )

    def __init__(self, rate: float | None) -> None:
        self.fired = self.dropped = self.errors = 0
        self.set_rate(rate)
        self.calls = 0  # evaluations started, for the budget's sampling
        self.next_timed = 1
        self.timed_calls = 0
        self.last_timed = self.window = _clock()
        self.spent = 0.0

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

    def as_dict(self) -> dict[str, int]:
        return {"fired": self.fired, "dropped": self.dropped, "errors": self.errors}


class Gate:
    """One instrument of one probe on one patched function."""

    __slots__ = (
        "checks_calls",
        "finishes",
        "instrument",
        "nested",
        "on_error",
        "probe",
        "sample",
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
        self.sample = 1 if self.stats.ring is not None else SAMPLE

    def _admit(self) -> bool:
        """Return True if the rate limit lets one more event through now (and count it),
        False to drop it (counted)."""
        stats = self.stats
        ring = stats.ring
        if ring is None:
            return True
        now = _clock()
        slot = stats.slot
        if now - ring[slot] < stats.period:
            stats.dropped += 1
            return False
        ring[slot] = now
        slot += 1
        stats.slot = 0 if slot == len(ring) else slot
        return True

    def _evaluate(self, g: dict[str, Any], ns: Any) -> None:
        """Run the instrument, timing one evaluation in ``sample`` against the budget."""
        stats = self.stats
        calls = stats.calls = stats.calls + 1
        if calls < stats.next_timed:
            self.instrument.fire(g, ns)
            stats.fired += 1
            return
        t0 = _clock()
        try:
            self.instrument.fire(g, ns)
        finally:
            t1 = _clock()
            stats.next_timed = calls + self.sample
            # The calls since the last timed one took about as long each; when they were
            # spread over more than a second, only their share per second counts.
            count = calls - stats.timed_calls
            span = t1 - stats.last_timed
            charge = (t1 - t0) * count / (span if span > 1.0 else 1.0)
            stats.timed_calls, stats.last_timed = calls, t1
            if t1 - stats.window >= 1.0:
                stats.window, stats.spent = t1, charge
            else:
                stats.spent += charge
        stats.fired += 1
        if stats.spent > BUDGET_SECONDS:
            raise BudgetExceeded(
                f"budget exceeded: {stats.spent * 1000:.0f} ms of evaluation within 1 s "
                f"(limit {BUDGET_SECONDS * 1000:.0f} ms); disabled until the spec changes"
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
            if self.stats.ring is not None and not self._admit():
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


def fire_end(gates: list[Gate], frame: types.FrameType, other_names: frozenset[str] | None) -> None:
    """Fire end gates in the target's frame (just before it returns, or where it raised)."""
    f_globals = frame.f_globals
    f_locals = frame.f_locals
    for gate in gates:
        gate.fire_in_frame(f_globals, f_locals, other_names)


def _overrides(instrument: Any, name: str) -> bool:
    """Return True when instrument's method name is not the base class's no-op (a
    subclass's, or one set on the instance)."""
    method = getattr(instrument, name, None)
    func = getattr(method, "__func__", method)
    return not getattr(func, "_diagnose_noop", False)
