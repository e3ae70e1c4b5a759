"""What a probed function runs on each call: which gates fire, with which names.

A Plan turns the live instruments on one function into the wrapper's source lines; each
event's namespace is a dict display of just the names the expressions read. The same lines
serve a return and a raise, so the two paths cannot drift apart; instruments that only care
about a raise (``raises_only``) get lines on the raise path alone.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from diagnose import clock as _time_module
from diagnose._gate.gate import Gate, Site, overrides
from diagnose._swap.codegen import Sections, Signature
from diagnose._swap.hotspots import Hotspots

if TYPE_CHECKING:
    from diagnose._swap.patch import Patch

__all__ = ("DEADLINE", "PARAMETERS", "Plan", "SPECIAL_NAMES", "shape")

_time = time.time

# The constants every wrapper may use, as the expressions that load them (Sections.const).
_P, _TIME, _CLOCK, _SYS = (repr(f"@{n}") for n in ("_dgn_p", "_dgn_time", "_dgn_clock", "_dgn_sys"))

CALL_NAMES = ("args", "kwargs", "start", "now", "frame")
RETURN_NAMES = ("result", "end", "elapsed", "hotspots")
SPECIAL_NAMES = frozenset(CALL_NAMES + RETURN_NAMES)


#: In an instrument's names(): every parameter of the target, by name (defaults applied).
PARAMETERS = "@parameters"
#: The marker of the wrapper's deadline constant (see Sections.const).
DEADLINE = "@_dgn_deadline"


def shape(instrument: Any) -> tuple[Any, ...]:
    """Return what of an instrument its gate's lines and its plan's depend on, besides the
    instrument itself: plans whose instruments (the same objects, in the same order) have
    the same shapes generate the same code but for the deadline constant."""
    stats = instrument.stats
    tags = instrument.custom.get("tags")
    # An instrument of Instrument's has both at once (its own subclass's may not).
    reads = getattr(instrument, "_plan_reads", None)
    names, nested = (
        reads() if reads is not None else (instrument.names(), instrument.nested_scopes())
    )
    return (
        instrument.event,
        instrument.line,
        names,
        instrument.checks_calls(),
        nested,
        overrides(instrument, "finish"),
        stats,  # by identity: the gate's lines load it
        stats.ring is None,
        stats.budget is None,
        "hotspots" in str(instrument.value) or "hotspots" in str(tags or ""),
        instrument.deadline is None,
    )


def _union(gates: list[Gate], parameters: tuple[str, ...] = ()) -> set[str] | None:
    """Return the names the gates' instruments read, or None when one may read any name."""
    names: set[str] = set()
    for gate in gates:
        wanted = gate.instrument.names()
        if wanted is None:
            return None
        names |= wanted
    if PARAMETERS in names:
        names.discard(PARAMETERS)
        names.update(parameters)
    return names


def _raises_only(gate: Gate) -> bool:
    """Return True for the gate of an instrument that fires only when the target raised."""
    return bool(getattr(gate.instrument, "raises_only", False))


class Plan:
    """The instruments live on one patched function, grouped by event, and the wrapper's
    lines that fire them."""

    def __init__(self, patch: Patch, entries: list[tuple[Any, Any]], code: Any) -> None:
        self.patch = patch
        self.gates = [Gate(instrument, probe, patch.expired) for instrument, probe in entries]
        self.calls = [g for g in self.gates if g.instrument.event == "call"]
        # Return gates fire after a return and after a raise; those of instruments that
        # only care about a raise (``raises_only``: exception replay) fire after a raise
        # only, so a call that returns pays nothing for them.
        returning = [g for g in self.gates if g.instrument.event == "return"]
        self.returns = [g for g in returning if not _raises_only(g)]
        self.raises = [g for g in returning if _raises_only(g)]
        self.ends = [g for g in self.gates if g.instrument.event == "end"]
        #: line number -> the gates of the line instruments that fire there
        self.lines: dict[int, list[Gate]] = {}
        for g in self.gates:
            if g.instrument.event == "line":
                self.lines.setdefault(g.instrument.line, []).append(g)
        self.finishers = [g for g in self.gates if g.finishes]
        self.live = bool(self.gates)
        # The caller's own split of args and kwargs needs the generic wrapper; the
        # exact one (the target's parameters) is cheaper and serves everything else.
        generic = any(
            gate.checks_calls or (wanted is None or "args" in wanted or "kwargs" in wanted)
            for gate in self.gates
            for wanted in [
                gate.instrument.names() if gate.instrument.event in ("call", "return") else set()
            ]
        )
        self.sig = Signature(code, exact=not generic)
        self.local_names = frozenset(code.co_varnames + code.co_cellvars + code.co_freevars)
        self.call_names = _union(self.calls, self.sig.names)
        self.return_names = _union(self.returns, self.sig.names)
        # After a raise both kinds fire, from one namespace.
        self.raise_names = _union(self.returns + self.raises, self.sig.names)
        # End and line instruments read the frame's locals; other names they read may
        # come from the manager's global_namespace, which then has to be merged in. Their
        # sites: None for the end, a line number for a line.
        self.sites: dict[int | None, Site] = {}
        if self.ends:
            self.sites[None] = Site(self.ends, self._other_names(self.ends), False)
        for line, gates in self.lines.items():
            names = _union(gates)
            frame = names is None or "frame" in names
            self.sites[line] = Site(gates, self._other_names(gates), frame)
        # As in the original library: hotspots are timed for return instruments whose
        # value or tags mention them.
        self.hotspots = any(
            "hotspots" in str(g.instrument.value)
            or "hotspots" in str(g.instrument.custom.get("tags") or "")
            for g in self.returns + self.raises
        )
        self.deadline = self.soonest_deadline()
        #: each gate's instrument's shape when the plan was made (see retune())
        self.shapes = [shape(g.instrument) for g in self.gates]

    def soonest_deadline(self) -> float | None:
        """Return the earliest deadline of the gates' instruments, or None."""
        deadlines = [g.instrument.deadline for g in self.gates]
        live_deadlines = [d for d in deadlines if d is not None]
        return min(live_deadlines) if live_deadlines else None

    def fits(self, entries: list[tuple[Any, Any]]) -> bool:
        """Tell whether entries (instrument, probe) are this plan's, in its order, each
        instrument of the shape it had: the code generated would be the same but for the
        deadline constant."""
        gates = self.gates
        if len(entries) != len(gates):
            return False
        for (instrument, probe), gate, was in zip(entries, gates, self.shapes, strict=True):
            if gate.instrument is not instrument or gate.probe is not probe:
                return False
            if shape(instrument) != was:
                return False
        return True

    def _other_names(self, gates: list[Gate]) -> frozenset[str] | None:
        names = _union(gates)
        return None if names is None else frozenset(names - self.local_names)

    @property
    def hooks(self) -> tuple[bool, frozenset[int]]:
        """What the target's own code must call: end instruments, and at which lines."""
        return bool(self.ends), frozenset(self.lines)

    # --- code generation -------------------------------------------------------------

    def _wants(self, names: set[str] | None, name: str) -> bool:
        return names is None or name in names

    def _specials(self, event: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Return the names every evaluation may read besides the parameters, with the code
        giving each: those shown before the parameters, and those after (return only)."""
        a, k = self.sig.args, self.sig.kwargs
        before = [
            ("args", a),
            ("kwargs", k),
            ("start", "_dgn_t0"),
            ("now", f"{_TIME}.utcnow_naive()"),
            ("frame", f"{_SYS}._getframe(0)"),
        ]
        after = []
        if event == "return":
            after = [
                ("result", "_dgn_r"),
                ("end", "_dgn_t1"),
                ("elapsed", "_dgn_t1 - _dgn_t0"),
                ("hotspots", "_dgn_h"),
            ]
        return before, after

    def _namespace(self, names: set[str] | None, event: str) -> str:
        """Return a dict display of the names an event's instruments read."""
        if names is None:
            return self._whole_namespace(event)
        sig = self.sig
        a, k = sig.args, sig.kwargs
        before, after = self._specials(event)
        items = [f"{name!r}: {value}" for name, value in before if name in names]
        unknown = bool(names - SPECIAL_NAMES - set(sig.names))
        if sig.exact:
            # Every parameter is a local of the wrapper, defaults applied.
            if unknown and sig.varkw:
                items.append(f"**{sig.varkw}")
            for name in sig.names:
                if name in names:
                    items.append(f"{name!r}: {name}")
        else:
            # Keywords as passed, then each named parameter; one passed some other way
            # (or left to its default) goes through the slower bind().
            if unknown:
                items.append(f"**{k}")
            for i, name in enumerate(sig.positional):
                if name not in names:
                    continue
                slow = f"{_P}.bind({a}, {k})[{name!r}]"
                by_kw = "" if i < sig.posonly else f"{k}[{name!r}] if {name!r} in {k} else "
                items.append(f"{name!r}: ({a}[{i}] if len({a}) > {i} else {by_kw}{slow})")
            for name in sig.kwonly:
                if name in names:
                    slow = f"{_P}.bind({a}, {k})[{name!r}]"
                    items.append(f"{name!r}: ({k}[{name!r}] if {name!r} in {k} else {slow})")
            for star in (sig.varargs, sig.varkw):
                if star and star in names:
                    items.append(f"{star!r}: {_P}.bind({a}, {k})[{star!r}]")
        items += [f"{name!r}: {value}" for name, value in after if name in names]
        return "{" + ", ".join(items) + "}"

    def _whole_namespace(self, event: str) -> str:
        """Return the dict display of every name, for instruments that may read any name.

        As in the original library: the arguments passed, by name (positional ones by
        their parameter's name, keywords as passed), and no hotspots unless mentioned.
        """
        a, k = self.sig.args, self.sig.kwargs
        before, after = self._specials(event)
        items = [f"{name!r}: {value}" for name, value in before]
        items.append(f"**{_P}.passed({a}, {k})")
        items += [
            f"{name!r}: {value}" for name, value in after if name != "hotspots" or self.hotspots
        ]
        return "{" + ", ".join(items) + "}"

    def _namespace_lines(self, names: set[str] | None, event: str) -> list[str]:
        """Return lines that set _dgn_ns, then the condition under which the gates fire
        (indented lines follow it): the namespace could be built."""
        display = self._namespace(names, event)
        if self.sig.exact:
            return [f"_dgn_ns = {display}", "if True:"]
        # A call whose arguments do not fit the parameters raises TypeError in the target;
        # instruments that read the parameters do not fire for it.
        return [
            "try:",
            f"    _dgn_ns = {display}",
            "except Exception:",
            "    _dgn_ns = None",
            "if _dgn_ns is not None:",
        ]

    def _gate_lines(self, gates: list[Gate], s: Sections) -> list[str]:
        lines = []
        for gate in gates:
            name = f"_dgn_g{len(s.consts)}_"
            lines += ["    " + line for line in gate.lines(s.const, name, *self._call_args)]
        return lines

    def _return_lines(
        self, s: Sections, timed: bool, gates: list[Gate], names: set[str] | None
    ) -> list[str]:
        """Lines (under ``if {on}:``) that fire gates of the return event, with _dgn_r set
        and names the names they read."""
        lines = [f"_dgn_t1 = {_CLOCK}.time()"] if timed else []
        lines += self._namespace_lines(names, "return")
        lines += self._gate_lines(gates, s)
        return lines

    def _finish_lines(self, s: Sections, on: str) -> list[str]:
        lines = []
        for gate in self.finishers:
            finisher = s.const(f"_dgn_f{len(s.consts)}", gate)
            lines.append(f"    {finisher}.finish()")
        return [f"if {on}:"] + lines if lines else []

    def sections(self) -> Sections:
        """Return the wrapper's generated lines for this plan.

        Only what the plan uses is computed on each call: no clock read unless a deadline or
        an instrument needs the time, no expiry test without a deadline (``if True:``
        compiles to nothing)."""
        s = Sections()
        s.const("_dgn_p", self)
        s.const("_dgn_time", _time_module)
        s.const("_dgn_clock", time)
        s.const("_dgn_sys", sys)
        self._call_args = (self.sig.args, self.sig.kwargs)
        call_timed = self.calls and self._wants(self.call_names, "start")
        return_timed = bool(self.returns) and any(
            self._wants(self.return_names, n) for n in ("start", "end", "elapsed")
        )
        raise_timed = bool(self.raises) and any(
            self._wants(self.raise_names, n) for n in ("start", "end", "elapsed")
        )
        timed = bool(call_timed or return_timed or raise_timed)
        before = s.before
        # Every event that can read start (or end, elapsed) is timed, so _dgn_t0 is set
        # whenever a line reads it.
        if timed or self.deadline is not None:
            before.append(f"_dgn_t0 = {_CLOCK}.time()")
        on = "True"
        if self.deadline is not None:
            on = "_dgn_on"
            dl = s.const(DEADLINE[1:], self.deadline)
            before.append(f"_dgn_on = _dgn_t0 < {dl}")
            before.append("if not _dgn_on:")
            before.append(f"    _dgn_on = {_P}.expired()")
        if self.hotspots:
            before.append(f"_dgn_h = {_P}.start_hotspots() if {on} else None")
        elif self._reads("hotspots"):
            before.append("_dgn_h = None")
        if self.calls:
            before.append(f"if {on}:")
            before += ["    " + line for line in self._namespace_lines(self.call_names, "call")]
            before += ["    " + line for line in self._gate_lines(self.calls, s)]
        # A raise: end gates in the raising frame, then the return gates (and those that
        # fire on a raise only) with the exception as result, through the lines of a return.
        on_error = s.on_error
        if self.hotspots:
            on_error += ["if _dgn_h is not None:", "    _dgn_h.stop()"]
        if self.ends:
            on_error += [f"if {on}:", f"    {_P}.ends_on_raise(_dgn_e)"]
        if self.returns or self.raises:
            raised = self.returns + self.raises
            lines = self._return_lines(s, return_timed or raise_timed, raised, self.raise_names)
            on_error += [f"if {on}:", "    _dgn_r = _dgn_e"]
            on_error += ["    " + line for line in lines]
        on_error += self._finish_lines(s, on)
        after = s.after
        if self.hotspots:
            after += ["if _dgn_h is not None:", "    _dgn_h.stop()"]
        if self.returns:
            lines = self._return_lines(s, return_timed, self.returns, self.return_names)
            after.append(f"if {on}:")
            after += ["    " + line for line in lines]
        after += self._finish_lines(s, on)
        return s

    def _reads(self, name: str) -> bool:
        """True when a call or return namespace may hold name (its lines then read the
        wrapper's local for it, which must be set)."""
        return (
            bool(self.calls and self._wants(self.call_names, name))
            or bool(self.returns and self._wants(self.return_names, name))
            or bool(self.raises and self._wants(self.raise_names, name))
        )

    # --- called from the wrapper ------------------------------------------------------

    def passed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Return the arguments of a call by name: positional ones, then keywords."""
        names = dict(zip(self.sig.positional, args, strict=False))
        names.update(kwargs)
        return names

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Return the target's parameters bound to a call's arguments, defaults applied;
        raises TypeError when they do not fit."""
        bound = self.patch.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def start_hotspots(self) -> Hotspots:
        return Hotspots(self.patch.codes).start()

    def expired(self) -> bool:
        """Re-plan without the instruments that expired (the wrapper's deadline passed).
        Return True when this plan stands still, live: its deadline had only moved later
        (see Patch.retune), so the call that found it passed goes on with this plan."""
        patch = self.patch
        patch.expired()
        return patch.plan is self and self.deadline is not None and _time() < self.deadline

    def ends_on_raise(self, exc: BaseException) -> None:
        """Fire the end gates in the frame of a target that raised."""
        if self.deadline is not None and _time() >= self.deadline and not self.expired():
            return
        tb = exc.__traceback__
        inner = tb.tb_next if tb is not None else None
        if inner is not None:
            self.sites[None].fire(inner.tb_frame)
