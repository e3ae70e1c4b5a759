"""The fire gate: whether an instrument fires for an event, and how.

Every way an instrument fires goes through a Gate, which decides in this order: check_call,
the rate limit (a ring of the last ``rate`` fire times), the evaluation, the budget
(``budget``), and errors (the instrument stops; nothing reaches the target's caller).
A Gate belongs to one plan; the gates of one instrument share its ``Stats``.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from diagnose._gate import budget

if TYPE_CHECKING:
    from diagnose._gate.counters import Stats

__all__ = ("MAX_RATE", "Gate", "Site", "overrides")

_NO_KWARGS: dict[str, Any] = {}

#: The highest rate a spec may ask for (events per second per process).
MAX_RATE = 10_000


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
        self.finishes = overrides(instrument, "finish")
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
        now = time.perf_counter()
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
        budget.timed_fire(stats, self.instrument, g, ns)

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
        inline, see ``patch``)."""
        f_globals = frame.f_globals
        f_locals: Any = frame.f_locals
        if self.with_frame:
            f_locals = {**f_locals, "frame": frame}
        for gate in self.gates:
            gate.fire_in_frame(f_globals, f_locals, self.other_names)


def overrides(instrument: Any, name: str) -> bool:
    """Return True when instrument's method name is not the base class's no-op (a
    subclass's, or one set on the instance)."""
    method = getattr(instrument, name, None)
    func = getattr(method, "__func__", method)
    return not getattr(func, "_diagnose_noop", False)
