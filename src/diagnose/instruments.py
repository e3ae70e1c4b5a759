"""Instruments: what a probe does when it fires (log, send a metric, keep a record)."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
import time
import types
from typing import Any

from . import _statsd
from ._spec import EVENTS, compile_eval, to_utc

__all__ = (
    "HistogramInstrument",
    "IncrementInstrument",
    "Instrument",
    "LogInstrument",
    "ProbeTestInstrument",
    "StatsdInstrumentBase",
)

omitted = object()
_WHOLE_NAMESPACE = frozenset({"locals", "vars", "dir"})


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names) | set(code.co_varnames)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


class Instrument:
    """An instrument which receives FunctionProbe events.

    ``value`` is a Python expression evaluated at ``event``: "call" (before the target
    runs), "return" (after it returns or raises; the default) or "end" (inside it, just
    before it returns or raises). ``internal=True`` is the older spelling of "end".
    ``expires`` is a datetime (naive means UTC) after which it never fires, or None.
    ``custom`` holds anything else; ``custom["tags"]`` is an expression giving a dict.

    The names an evaluation sees are those its expressions mention (see ``names()``):
    a subclass whose ``fire`` reads other names from ``_locals`` lists them in
    ``extra_names``, or sets it to None to get every name.
    """

    error_expiration = _dt.datetime(1970, 1, 1)
    extra_names: frozenset[str] | None = frozenset()

    def __init__(
        self,
        name: str,
        value: str,
        event: str = "return",
        expires: _dt.datetime | None = None,
        custom: dict[str, Any] | None = None,
        mgr: Any = None,
        internal: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if mgr is None:
            import diagnose

            mgr = diagnose.manager
        if internal is not None and event == "return":
            event = "end" if internal else "return"
        if event not in EVENTS:
            raise ValueError(f"event must be one of {', '.join(EVENTS)}, not {event!r}")
        self.mgr = mgr
        self.name = name
        self.value = value
        self.event = event
        self.custom = custom or {}
        self._patches: set[Any] = set()
        self.expires = expires
        self.error: str | None = None
        self._codes: dict[str, Any] = {}
        self._checks_calls = True
        self._nested = False

    @property
    def internal(self) -> bool:
        """True for an "end" instrument (the older spelling)."""
        return self.event == "end"

    @internal.setter
    def internal(self, value: bool) -> None:
        self.event = "end" if value else "return"

    @property
    def expires(self) -> _dt.datetime | None:
        return self._expires

    @expires.setter
    def expires(self, value: _dt.datetime | None) -> None:
        self._expires = value
        self._deadline = None if value is None else to_utc(value).timestamp()
        for patch in list(getattr(self, "_patches", ())):
            patch.expired()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, value={self.value!r}, "
            f"event={self.event!r}, expires={self.expires!r}, custom={self.custom!r})"
        )

    __str__ = __repr__

    def is_live(self) -> bool:
        """Return True while the instrument may still fire (it has not expired)."""
        return self._deadline is None or time.time() < self._deadline

    def compiled(self, expr: str) -> Any:
        """Return expr compiled for eval(), cached."""
        code = self._codes.get(expr)
        if code is None:
            code = self._codes[expr] = compile_eval(expr, f"<probe {self.name}>")
        return code

    def names(self) -> set[str] | None:
        """Return the names this instrument's evaluations read, or None for every name."""
        if self.extra_names is None:
            return None
        names = set(self.extra_names)
        for expr in (self.value, self.custom.get("tags")):
            if isinstance(expr, str):
                try:
                    names |= _names_in(self.compiled(expr))
                except SyntaxError:
                    pass
        if names & _WHOLE_NAMESPACE:
            return None  # locals() and friends read every name
        return names

    def nested_scopes(self) -> bool:
        """Return True when an expression has a lambda or comprehension.

        Their bodies look names up in the globals only, so such an instrument is
        evaluated with everything merged into one globals dict (slower, but right).
        """
        for expr in (self.value, self.custom.get("tags")):
            if isinstance(expr, str):
                try:
                    code = self.compiled(expr)
                except SyntaxError:
                    continue
                if any(isinstance(c, types.CodeType) for c in code.co_consts):
                    return True
        return False

    def checks_calls(self) -> bool:
        """Return True when check_call() may say no: it or the manager's is overridden."""
        from .managers import ProbeManager

        # Compare the bound methods' functions: that also catches a check_call replaced
        # on the instance (mock.patch does that), without touching the instances'
        # __dict__ (materialising it makes every later attribute read slower).
        mine = getattr(self.check_call, "__func__", None) is not Instrument.check_call
        mgr_check = getattr(self.mgr, "check_call", None)
        return mine or getattr(mgr_check, "__func__", None) is not ProbeManager.check_call

    def evaluate(self, value: str, _globals: dict[str, Any], _locals: dict[str, Any]) -> Any:
        """Evaluate the expression value in the given namespaces."""
        v = _locals.get(value, omitted)
        if v is omitted:
            v = eval(self.compiled(value), _globals, _locals)
        return v

    def merge_tags(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> list[str]:
        """Return the manager's tags plus those of ``custom["tags"]``, as "key:value" strings."""
        tags = _as_tag_list(self.mgr.get_tags())
        expr = self.custom.get("tags")
        if expr:
            value = self.evaluate(expr, _globals, _locals)
            if not isinstance(value, dict):
                raise TypeError(f"custom tags must evaluate to a dict, not {type(value).__name__}")
            tags = tags + _as_tag_list(value)
        return tags

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        raise NotImplementedError()

    def check_call(self, probe: Any, *args: Any, **kwargs: Any) -> bool:
        """Return True if this instrument should fire for this call.

        By default, ask the manager. Override this in a subclass to check the call's
        args and kwargs, or other state such as self.custom or thread-locals.
        """
        return bool(self.mgr.check_call(probe, self, *args, **kwargs))

    def handle_error(self, probe: Any) -> None:
        """Stop firing after an error, record it, and hand it to the manager."""
        exc = sys.exc_info()[1]
        self.error = _one_line(exc) if exc is not None else "error"
        if self.error_expiration:
            # Expired long ago: it stays silent until someone edits it or the process
            # restarts, so a broken expression costs one error per process, not per call.
            self.expires = self.error_expiration
        self.mgr.handle_error(probe, self)

    def finish(self) -> None:
        """Release what the instrument holds; called when it is removed from its probe."""

    def __call__(self, f: Any) -> Any:
        """Use self as a decorator: attach a probe to the function for good."""
        from . import probes
        from ._resolve import underlying_function

        func = underlying_function(f, getattr(f, "__qualname__", repr(f)))
        target = f"{func.__module__}.{func.__qualname__}".replace(".<locals>", "")
        probe = probes.attach_to(target)
        probe._bind(func)
        # A prefix no manager owns, so that no manager's apply() removes it.
        probe.instruments[f"hardcode:{hash(target)}:{id(self):x}"] = self
        probe.start()
        return f


def _as_tag_list(tags: Any) -> list[str]:
    if not tags:
        return []
    if isinstance(tags, dict):
        return [f"{k}:{v}" for k, v in tags.items()]
    return [str(t) for t in tags]


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class LogInstrument(Instrument):
    """Write ``Probe (NAME) = VALUE`` to the current sys.stdout, or to a logging.Logger.

    Set ``LogInstrument.logger`` (or one instrument's ``logger``) to a logging.Logger to
    route the lines through stdlib logging at INFO instead.
    """

    MAX_CHARS = 2000
    logger: logging.Logger | None = None

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        v = _cut(str(self.evaluate(self.value, _globals, _locals)), self.MAX_CHARS)
        tags = self.merge_tags(_globals, _locals)
        self.emit(self.name, v, _cut(str(tags), self.MAX_CHARS) if tags else "")

    def emit(self, name: str, value: str, tags: str) -> None:
        line = f"Probe ({name})[tags={tags}] = {value}" if tags else f"Probe ({name}) = {value}"
        if self.logger is not None:
            self.logger.info(line)
            return
        out = sys.stdout
        if out is not None:
            out.write(line + "\n")
            out.flush()


class StatsdInstrumentBase(Instrument):
    """Send a numeric value as a DogStatsD metric over UDP."""

    MAX_CHARS = 2000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _statsd.client()  # make the client now, not on the target's first call

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        v = self.evaluate(self.value, _globals, _locals)
        if v is None:
            return
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"Cannot send non-numeric metric: {_cut(str(v), self.MAX_CHARS)}")
        self.emit(self.name, v, self.merge_tags(_globals, _locals))

    def emit(self, name: str, value: float, tags: list[str]) -> None:
        raise NotImplementedError()


class HistogramInstrument(StatsdInstrumentBase):
    """Send the value as a histogram sample (``name:value|h``)."""

    def emit(self, name: str, value: float, tags: list[str]) -> None:
        _statsd.client().histogram(name, value, tags=tags or None)


class IncrementInstrument(StatsdInstrumentBase):
    """Add the value to a counter (``name:value|c``)."""

    def emit(self, name: str, value: float, tags: list[str]) -> None:
        _statsd.client().increment(name, value, tags=tags or None)


class ProbeTestInstrument(Instrument):
    """Keep every (tags, value) in ``log``; ``results`` lists the values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[tuple[list[str], Any]] = []

    @property
    def results(self) -> list[Any]:
        return [value for _tags, value in self.log]

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        v = self.evaluate(self.value, _globals, _locals)
        tags = self.merge_tags(_globals, _locals)
        self.log.append((tags, v))
