"""What a probed function runs on each call: which instruments fire, with which names.

A Plan turns the live instruments on one function into source lines for its wrapper:
the namespace each event needs is built inline, as a dict display with just the names
the instruments' expressions read, so a probe costs little more than the calls it
makes. Rare paths (an exception from the target, an instrument error, expiry) go
through ordinary methods.
"""

from __future__ import annotations

import datetime as _dt
import linecache
import sys
import time
from collections import namedtuple
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._inject import Sections, Signature

if TYPE_CHECKING:
    from .instruments import Instrument
    from .probes import FunctionProbe, _Patch

__all__ = ("CallTime", "Hotspots", "Plan", "SPECIAL_NAMES")

_time = time.time
_getframe = sys._getframe
_utc = _dt.UTC

CALL_NAMES = ("args", "kwargs", "start", "now", "frame")
RETURN_NAMES = ("result", "end", "elapsed", "hotspots")
SPECIAL_NAMES = frozenset(CALL_NAMES + RETURN_NAMES)

CallTime = namedtuple("CallTime", ["time", "lineno", "source"])


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_utc).replace(tzinfo=None)


class Hotspots:
    """Time each line of one call of the target: ``worst`` (total) and ``slowest`` (single)."""

    def __init__(self, codes: Iterable[Any]) -> None:
        self._codes = frozenset(codes)
        self._previous: Any = None
        self._last_line: int | None = None
        self._last_time = 0.0
        self.filename: str | None = None
        self.calls: dict[int, list[float]] = {}
        self.worst = self.slowest = CallTime(None, None, None)

    def start(self) -> Hotspots:
        """Start timing lines (through sys.settrace, restored by stop())."""
        self._previous = sys.gettrace()
        sys.settrace(self._on_call)
        return self

    def _on_call(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code in self._codes and self.filename is None:
            self.filename = frame.f_code.co_filename
            return self._on_line
        return None

    def _on_line(self, frame: Any, event: str, arg: Any) -> Any:
        now = _time()
        if self._last_line is not None:
            spent = now - self._last_time
            record = self.calls.get(self._last_line)
            if record is None:
                self.calls[self._last_line] = [1, spent, spent]
            else:
                record[0] += 1
                record[1] = max(record[1], spent)
                record[2] += spent
        self._last_line = frame.f_lineno if event == "line" else None
        self._last_time = _time()
        return self._on_line

    def stop(self) -> Hotspots:
        """Stop timing, restore the previous trace function, and compute the results."""
        sys.settrace(self._previous)
        self._previous = None
        if self.calls:
            worst = max((rec[2], line) for line, rec in self.calls.items())
            slowest = max((rec[1], line) for line, rec in self.calls.items())
            self.worst = CallTime(worst[0], worst[1], self.source(worst[1]))
            self.slowest = CallTime(slowest[0], slowest[1], self.source(slowest[1]))
        return self

    def source(self, lineno: int) -> str:
        return linecache.getline(self.filename or "", lineno)

    def __repr__(self) -> str:
        return f"Hotspots(worst={self.worst}, slowest={self.slowest})"


def _union(entries: list[Any]) -> set[str] | None:
    """Return the names the instruments read, or None when one of them may read any name."""
    names: set[str] = set()
    for instrument, _probe in entries:
        wanted = instrument.names()
        if wanted is None:
            return None
        names |= wanted
    return names


class Plan:
    """The instruments live on one patched function, grouped by event, and how to fire them."""

    def __init__(
        self, patch: _Patch, entries: list[tuple[Instrument, FunctionProbe]], code: Any
    ) -> None:
        self.patch = patch
        self.entries = entries
        for instrument, _probe in entries:
            instrument._checks_calls = instrument.checks_calls()
            instrument._nested = instrument.nested_scopes()
        self.calls = [e for e in entries if e[0].event == "call"]
        self.returns = [e for e in entries if e[0].event == "return"]
        self.ends = [e for e in entries if e[0].event == "end"]
        self.live = bool(entries)
        # The caller's own split of args and kwargs needs the generic wrapper; the
        # exact one (the target's parameters) is cheaper and serves everything else.
        generic = any(
            instrument._checks_calls or (wanted is None or "args" in wanted or "kwargs" in wanted)
            for instrument, _probe in entries
            for wanted in [instrument.names() if instrument.event != "end" else set()]
        )
        self.sig = Signature(code, exact=not generic)
        self.local_names = frozenset(code.co_varnames + code.co_cellvars + code.co_freevars)
        self.call_names = _union(self.calls)
        self.return_names = _union(self.returns)
        end_names = _union(self.ends)
        # End instruments read the frame's locals; other names they read may come from
        # the manager's global_namespace, which then has to be merged in.
        self.end_other_names = (
            None if end_names is None else frozenset(end_names - self.local_names)
        )
        # As in the original library: hotspots are timed for return instruments whose
        # value or tags mention them.
        self.hotspots = any(
            "hotspots" in str(i.value) or "hotspots" in str(i.custom.get("tags") or "")
            for i, _probe in self.returns
        )
        deadlines = [e[0]._deadline for e in entries if e[0]._deadline is not None]
        self.deadline = min(deadlines) if deadlines else None

    # --- code generation -------------------------------------------------------------

    def _wants(self, names: set[str] | None, name: str) -> bool:
        return names is None or name in names

    def _namespace(self, names: set[str] | None, event: str) -> str:
        """Return a dict display of the names an event's instruments read."""
        sig = self.sig
        a, k = sig.args, sig.kwargs
        if names is None:
            return self._whole_namespace(event)
        before, after = self._specials(event)
        items = [f"{name!r}: {value}" for name, value in before if name in names]
        unknown = names is None or bool(names - SPECIAL_NAMES - set(sig.names))
        if sig.exact:
            # Every parameter is a local of the wrapper, defaults applied.
            if unknown and sig.varkw:
                items.append(f"**{sig.varkw}")
            for name in sig.names:
                if self._wants(names, name):
                    items.append(f"{name!r}: {name}")
        else:
            # Keywords as passed, then each named parameter; one passed some other way
            # (or left to its default) goes through the slower bind().
            if unknown:
                items.append(f"**{k}")
            for i, name in enumerate(sig.positional):
                if not self._wants(names, name):
                    continue
                slow = f"_dgn_p.bind({a}, {k})[{name!r}]"
                by_kw = "" if i < sig.posonly else f"{k}[{name!r}] if {name!r} in {k} else "
                items.append(f"{name!r}: ({a}[{i}] if len({a}) > {i} else {by_kw}{slow})")
            for name in sig.kwonly:
                if self._wants(names, name):
                    slow = f"_dgn_p.bind({a}, {k})[{name!r}]"
                    items.append(f"{name!r}: ({k}[{name!r}] if {name!r} in {k} else {slow})")
            for star in (sig.varargs, sig.varkw):
                if star and self._wants(names, star):
                    items.append(f"{star!r}: _dgn_p.bind({a}, {k})[{star!r}]")
        items += [f"{name!r}: {value}" for name, value in after if name in names]
        return "{" + ", ".join(items) + "}"

    def _specials(self, event: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Return the names every evaluation may read besides the parameters, with the code
        giving each: those shown before the parameters, and those after (return only)."""
        a, k = self.sig.args, self.sig.kwargs
        before = [
            ("args", a),
            ("kwargs", k),
            ("start", "_dgn_t0"),
            ("now", "_dgn_utcnow()"),
            ("frame", "_dgn_getframe(0)"),
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

    def _whole_namespace(self, event: str) -> str:
        """Return the dict display of every name, for instruments that may read any name.

        As in the original library: the arguments passed, by name (positional ones by
        their parameter's name, keywords as passed), and no hotspots unless mentioned.
        """
        a, k = self.sig.args, self.sig.kwargs
        before, after = self._specials(event)
        items = [f"{name!r}: {value}" for name, value in before]
        items.append(f"**_dgn_p.passed({a}, {k})")
        items += [
            f"{name!r}: {value}" for name, value in after if name != "hotspots" or self.hotspots
        ]
        return "{" + ", ".join(items) + "}"

    def passed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Return the arguments of a call by name: positional ones, then keywords."""
        names = dict(zip(self.sig.positional, args, strict=False))
        names.update(kwargs)
        return names

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """Return the target's parameters bound to a call's arguments, defaults applied;
        None when they do not fit."""
        try:
            bound = self.patch.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        bound.apply_defaults()
        return dict(bound.arguments)

    def _namespace_lines(self, names: set[str] | None, event: str) -> list[str]:
        """Return lines that set _dgn_ns, and fire nothing when it cannot be built."""
        display = self._namespace(names, event)
        if self.sig.exact:
            return ["if _dgn_on:", f"    _dgn_ns = {display}"]
        # A call whose arguments do not fit the parameters raises TypeError in the target;
        # its instruments do not fire.
        return [
            "if _dgn_on:",
            "    try:",
            f"        _dgn_ns = {display}",
            "    except Exception:",
            "        _dgn_ns = None",
            "if _dgn_on and _dgn_ns is not None:",
        ]

    def _fire_lines(self, entries: list[Any], first: int, s: Sections) -> list[str]:
        lines = []
        for offset, (instrument, probe) in enumerate(entries):
            i = first + offset
            inst = s.const(f"_dgn_i{i}", instrument)
            lines.append("    try:")
            fire = f"{inst}.fire({inst}.mgr.global_namespace, _dgn_ns)"
            if instrument._nested:
                lines.append(f"        _dgn_g = dict({inst}.mgr.global_namespace)")
                lines.append("        _dgn_g.update(_dgn_ns)")
                fire = f"{inst}.fire(_dgn_g, _dgn_g)"
            if instrument._checks_calls:
                pb = s.const(f"_dgn_pb{i}", probe)
                lines.append(f"        if {inst}.check_call({pb}, {self.sig.forward}):")
                lines.append(f"            {fire}")
            else:
                lines.append(f"        {fire}")
            lines.append("    except KeyboardInterrupt:")
            lines.append("        raise")
            lines.append("    except BaseException:")
            lines.append(f"        _dgn_p.failed({inst})")
        return lines

    def sections(self) -> Sections:
        """Return the wrapper's generated lines for this plan."""
        s = Sections()
        s.const("_dgn_p", self)
        s.const("_dgn_time", _time)
        s.const("_dgn_utcnow", _utcnow)
        s.const("_dgn_getframe", sys._getframe)
        call_timed = self.calls and self._wants(self.call_names, "start")
        return_timed = self.returns and any(
            self._wants(self.return_names, n) for n in ("start", "end", "elapsed")
        )
        timed = bool(call_timed or return_timed)
        before = s.before
        if timed or self.deadline is not None:
            before.append("_dgn_t0 = _dgn_time()")
        else:
            before.append("_dgn_t0 = None")
        if self.deadline is not None:
            dl = s.const("_dgn_deadline", self.deadline)
            before.append(f"_dgn_on = _dgn_t0 < {dl}")
            before.append("if not _dgn_on:")
            before.append("    _dgn_p.expired()")
        else:
            before.append("_dgn_on = True")
        before.append(
            "_dgn_h = _dgn_p.start_hotspots() if _dgn_on else None"
            if self.hotspots
            else "_dgn_h = None"
        )
        if self.calls:
            before += self._namespace_lines(self.call_names, "call")
            before += self._fire_lines(self.calls, 0, s)
        if self.returns or self.ends or self.hotspots:
            s.on_error.append(
                f"_dgn_p.fail(_dgn_on, _dgn_t0, _dgn_h, {self.sig.args}, {self.sig.kwargs}, _dgn_e)"
            )
        if self.hotspots:
            s.after.append("if _dgn_h is not None:")
            s.after.append("    _dgn_h.stop()")
        if self.returns:
            s.after.append("if _dgn_on:")
            if return_timed:
                s.after.append("    _dgn_t1 = _dgn_time()")
            s.after += self._namespace_lines(self.return_names, "return")[1:]
            s.after += self._fire_lines(self.returns, len(self.calls), s)
        return s

    # --- called from the wrapper ------------------------------------------------------

    def start_hotspots(self) -> Hotspots:
        return Hotspots(self.patch.codes).start()

    def expired(self) -> None:
        """Re-plan without the instruments that expired."""
        self.patch.expired()

    def failed(self, instrument: Any) -> None:
        """Hand an instrument's error to it (it stops firing), then re-plan."""
        probe = next((p for i, p in self.entries if i is instrument), None)
        try:
            instrument.handle_error(probe)
        except Exception:
            pass
        self.patch.expired()

    def fail(
        self,
        on: bool,
        t0: Any,
        hotspots: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: BaseException,
    ) -> None:
        """Fire end instruments in the raising frame, then return instruments with the error."""
        if hotspots is not None:
            hotspots.stop()
        if not on:
            return
        if self.ends:
            tb = exc.__traceback__
            inner = tb.tb_next if tb is not None else None
            if inner is not None:
                self.fire_end(inner.tb_frame)
        if not self.returns:
            return
        t1 = _time()
        ns: dict[str, Any] = {
            "args": args,
            "kwargs": kwargs,
            "start": t0,
            "now": _utcnow(),
            "frame": _getframe(1),
        }
        ns.update(kwargs)
        bound = self.bind(args, kwargs)
        if bound is not None:
            ns.update(bound)
        parameters = set(self.sig.names)
        ns.update({"result": exc, "end": t1})
        if self.hotspots:
            ns["hotspots"] = hotspots
        ns["elapsed"] = None if t0 is None else t1 - t0
        for instrument, probe in self.returns:
            if bound is None:
                wanted = instrument.names()
                if wanted is None or wanted & parameters:
                    continue  # the call did not fit the parameters: they have no values
            try:
                if instrument._checks_calls and not instrument.check_call(probe, *args, **kwargs):
                    continue
                if instrument._nested:
                    merged = dict(instrument.mgr.global_namespace)
                    merged.update(ns)
                    instrument.fire(merged, merged)
                else:
                    instrument.fire(instrument.mgr.global_namespace, ns)
            except KeyboardInterrupt:
                raise
            except BaseException:
                self.failed(instrument)

    def fire_end(self, frame: Any) -> None:
        """Fire the end instruments in the frame of a target that raised."""
        if self.deadline is not None and _time() >= self.deadline:
            self.patch.expired()
            return
        self.patch.end_hook(frame)
