"""The one fire gate: whether an instrument fires for an event, and how.

Every way an instrument can fire goes through a Gate: the generated wrapper calls
``gate.fire(ns)`` for call and return events (also when the target raised), the end
hook calls ``gate.fire_in_frame(...)`` inside the target, and ``gate.finish()`` runs
after each call. So what decides firing (check_call, the namespaces an expression
sees, and what an error does) is written once, here; the policy, rate limits, budgets
and redaction that come next are added here and nowhere else.

A Gate belongs to one plan (the instruments live on one function at one time): the
plan keeps its records (does check_call matter, does an expression need merged
namespaces) on the gate, never on the instrument, which may sit on several functions.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

__all__ = ("Gate", "fire_end")

_NO_KWARGS: dict[str, Any] = {}


class Gate:
    """One instrument of one probe on one patched function."""

    __slots__ = ("checks_calls", "finishes", "instrument", "nested", "on_error", "probe")

    def __init__(self, instrument: Any, probe: Any, on_error: Callable[[], None]) -> None:
        self.instrument = instrument
        self.probe = probe
        #: called (to re-plan) after the instrument handled an error and stopped firing
        self.on_error = on_error
        self.checks_calls: bool = instrument.checks_calls()
        self.nested: bool = instrument.nested_scopes()
        self.finishes = _overrides(instrument, "finish")

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
            gns = instrument.mgr.global_namespace
            if self.nested:
                # A comprehension's body looks names up in its globals only.
                merged = dict(gns)
                merged.update(ns)
                instrument.fire(merged, merged)
            else:
                instrument.fire(gns, ns)
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
            instrument.fire(g, ns)
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
