"""The Instrument base class: what a probe evaluates when it fires, and the extension point."""

from __future__ import annotations

import datetime as _dt
import sys
import time
import weakref
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

from diagnose import probes
from diagnose._gate.counters import Stats
from diagnose._output.redaction import is_secret
from diagnose._safety.expressions import compile_eval, has_nested_scope, names_read
from diagnose._swap.targets import underlying_function
from diagnose.clock import to_utc
from diagnose.exceptions import one_line
from diagnose.instruments._manager import default_manager, overrides_check_call
from diagnose.outbox import OUTBOX, Origin
from diagnose.spec import EVENTS

__all__ = ("KEPT", "Instrument", "omitted", "tag_dict", "tag_list")
omitted = object()
#: Expressions an instrument keeps compiled (an edited spec that goes back to one it had
#: finds it compiled): the last ones.
KEPT = 8


def _drop_oldest(codes: dict[str, Any], plain: set[str]) -> None:
    try:
        oldest = next(iter(codes))
    except (StopIteration, RuntimeError):  # emptied, or changed by another thread
        return
    codes.pop(oldest, None)
    plain.discard(oldest)


class Instrument:
    """An instrument which receives FunctionProbe events.

    ``value`` is a Python expression evaluated at ``event``: "call" (before the target
    runs), "return" (after it returns or raises; the default), "end" (inside it, just
    before it returns or raises) or "line" (each time line ``line`` of the target's
    source file is about to run). ``internal=True`` is the older spelling of "end".
    ``expires`` is a datetime (naive means UTC) after which it never fires, or None.
    ``custom`` holds anything else; ``custom["tags"]`` is an expression giving a dict.
    ``mgr`` is the manager it reports to (default: ``diagnose.manager``).

    The names an evaluation sees are those its expressions mention (see ``names()``):
    a subclass whose ``fire`` reads other names from ``_locals`` lists them in
    ``extra_names``, or sets it to None to get every name.
    """

    error_expiration = _dt.datetime(1970, 1, 1)
    extra_names: frozenset[str] | None = frozenset()
    #: True for a "return" instrument that fires only when the target raised (a call that
    #: returns then pays nothing for it)
    raises_only = False

    def __init__(
        self,
        name: str,
        value: str,
        event: str = "return",
        expires: _dt.datetime | None = None,
        custom: dict[str, Any] | None = None,
        mgr: Any = None,
        internal: bool | None = None,
        line: int | None = None,
    ) -> None:
        if mgr is None:
            mgr = default_manager()
        if internal is not None and event == "return":
            event = "end" if internal else "return"
        if event not in EVENTS:
            raise ValueError(f"event must be one of {', '.join(EVENTS)}, not {event!r}")
        if (event == "line") != (line is not None):
            raise ValueError("a line instrument needs line=N, and only it takes one")
        #: for event "line": the line of the target's source file it fires at
        self.line = line
        self.mgr = mgr
        self.name = name
        self.value = value
        self.event = event
        self.custom = custom or {}
        rate = self.custom.get("rate")
        #: fired, dropped and errors in this process, and the rate limit's state
        self.stats = Stats(rate if isinstance(rate, int | float) and rate > 0 else None)
        self._expiry_watchers: list[weakref.WeakMethod[Callable[..., None]]] = []
        self.expires = expires
        self.error: str | None = None
        self._codes: dict[str, Any] = {}
        self._plain: set[str] = set()
        # (the expressions' codes..., extra_names) -> (names read, nested scopes)
        self._facts_of: dict[Any, tuple[frozenset[str] | None, bool]] = {}
        #: compiles an expression (expr, filename): plainly for instruments made in code;
        #: a manager sets its policy's for the instruments of specs
        self.compiler: Any = compile_eval
        #: the spec this instrument was made from (its ID and type), set by the manager;
        #: None for instruments made in code. Only the output of a spec's instrument goes
        #: to the fleet's output stream (see diagnose.outbox).
        self.origin: Origin | None = None

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
        self._set_expires(value)
        self._tell_watchers()

    def _set_expires(self, value: _dt.datetime | None) -> None:
        """Set expires without telling the watchers (the caller re-plans its probe: see
        FunctionProbe.revise)."""
        self._expires = value
        #: unix time from which it never fires, or None
        self.deadline = None if value is None else to_utc(value).timestamp()

    def _tell_watchers(self) -> None:
        alive = []
        for ref in self._expiry_watchers:
            callback = ref()
            if callback is not None:
                alive.append(ref)
                callback()
        self._expiry_watchers = alive

    def watch_expiry(self, callback: Callable[..., None]) -> None:
        """Call callback (a bound method, held weakly) whenever ``expires`` changes."""
        ref = weakref.WeakMethod(callback)
        if ref not in self._expiry_watchers:
            self._expiry_watchers.append(ref)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, value={self.value!r}, "
            f"event={self.event!r}, expires={self.expires!r}, custom={self.custom!r})"
        )

    __str__ = __repr__

    @property
    def budget(self) -> float | None:
        """Seconds of evaluation allowed within one second (None: no budget)."""
        return self.stats.budget

    @budget.setter
    def budget(self, value: float | None) -> None:
        self.stats.set_budget(value)

    @property
    def rate(self) -> float | None:
        """Events per second this instrument may fire at most (None: no limit)."""
        ring = self.stats.ring
        return None if ring is None else len(ring) / self.stats.period

    @rate.setter
    def rate(self, value: float | None) -> None:
        self.stats.set_rate(value)

    def is_live(self) -> bool:
        """Return True while the instrument may still fire (it has not expired)."""
        return self.deadline is None or time.time() < self.deadline

    # --- expressions ----------------------------------------------------------------

    def compiled(self, expr: str) -> Any:
        """Return expr compiled for eval(), cached (the KEPT last expressions)."""
        code = self._codes.get(expr)
        if code is None:
            code = self.compiler(expr, f"<probe {self.name}>")
            codes = self._codes
            if len(codes) >= KEPT:
                _drop_oldest(codes, self._plain)
            codes[expr] = code
            name = expr.strip()
            if name.isidentifier() and (self.compiler is compile_eval or not is_secret(name)):
                # A bare name is read from the namespace without eval() (see evaluate);
                # never a secret one, which the compiled code reads as <redacted>.
                self._plain.add(expr)
        return code

    def _compiled_expressions(self) -> list[Any]:
        codes = []
        for expr in (self.value, self.custom.get("tags")):
            if isinstance(expr, str):
                try:
                    codes.append(self.compiled(expr))
                except (SyntaxError, ValueError):
                    pass
        return codes

    def names(self) -> AbstractSet[str] | None:
        """Return the names this instrument's evaluations read, or None for every name."""
        if self.extra_names is None:
            return None
        return self._facts()[0]

    def nested_scopes(self) -> bool:
        """Return True when an expression has a lambda or comprehension."""
        return self._facts()[1]

    def _plan_reads(self) -> tuple[AbstractSet[str] | None, bool]:
        """Return (names(), nested_scopes()) at once: a plan asks for both at every edit."""
        cls = type(self)
        if cls.names is not Instrument.names or cls.nested_scopes is not Instrument.nested_scopes:
            return self.names(), self.nested_scopes()
        if cls._compiled_expressions is Instrument._compiled_expressions:
            # Its expressions are value and tags: their texts stand for their codes (which
            # change with the compiler or the name only, and then the facts are forgotten).
            key = (self.value, self.custom.get("tags"), self.extra_names)
            facts = self._facts_of.get(key)
            if facts is None:
                facts = self._facts_of[key] = self._facts()
        else:
            facts = self._facts()
        names, nested = facts
        return (None if self.extra_names is None else names), nested

    def _facts(self) -> tuple[frozenset[str] | None, bool]:
        """Return what names() and nested_scopes() tell, worked out once for the current
        expressions' codes (a plan asks for them several times; a subclass may compile
        more expressions than value and tags) and kept with them."""
        codes = self._compiled_expressions()
        key = (*codes, self.extra_names)
        facts = self._facts_of.get(key)
        if facts is None:
            names = names_read(codes, self.extra_names or ())
            facts = (None if names is None else frozenset(names), has_nested_scope(codes))
            if len(self._facts_of) >= KEPT:
                self._facts_of.clear()
            self._facts_of[key] = facts
        return facts

    def evaluate(self, value: str, _globals: dict[str, Any], _locals: dict[str, Any]) -> Any:
        """Evaluate the expression value in the given namespaces."""
        if value in self._plain:
            v = _locals.get(value, omitted)
            if v is not omitted:
                return v
        return eval(self.compiled(value), _globals, _locals)

    def merge_tags(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> dict[str, Any]:
        """Return ``custom["tags"]`` (an expression giving a dict) updated with the
        manager's ``get_tags()``, as a dict."""
        tags: dict[str, Any] = {}
        expr = self.custom.get("tags")
        if expr:
            value = self.evaluate(expr, _globals, _locals)
            if not isinstance(value, dict):
                raise TypeError(f"custom tags must evaluate to a dict, not {type(value).__name__}")
            tags.update(value)
        # As in the original: the manager's tags win over the instrument's.
        tags.update(tag_dict(self.mgr.get_tags()))
        return tags

    # --- what subclasses implement ----------------------------------------------------

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        """Do what the instrument is for, with the event's names.

        The main extension point: evaluate ``self.value`` (``self.evaluate(self.value,
        _globals, _locals)``) and emit it somewhere. ``_globals`` is the manager's
        global_namespace (for "end": the target's globals), ``_locals`` the event's names
        (see the class docstring). An exception stops this instrument (it goes to
        ``handle_error``) and never reaches the target's caller.
        """
        raise NotImplementedError()

    def check_call(self, probe: Any, *args: Any, **kwargs: Any) -> bool:
        """Return True if this instrument should fire for this call.

        By default, ask the manager. Override this in a subclass to check the call's
        args and kwargs, or other state such as self.custom or thread-locals.
        """
        return bool(self.mgr.check_call(probe, self, *args, **kwargs))

    def update(self, **settings: Any) -> None:
        """Change what the instrument is (name, value, event, custom, expires, internal) in
        place, as an edited spec does; its error and budget start afresh."""
        self._revise(settings)
        self._tell_watchers()

    update._diagnose_base = True  # type: ignore[attr-defined]  # see FunctionProbe.revise

    def _revise(self, settings: dict[str, Any]) -> None:
        """update() without telling the watchers (the caller re-plans its probe)."""
        renamed = "name" in settings and settings["name"] != self.name
        for field in ("name", "value", "event", "custom", "line"):
            if field in settings:
                setattr(self, field, settings[field])
        if settings.get("internal") is not None:
            self.internal = settings["internal"]
        self.custom = self.custom or {}
        self.error = None
        # In place: the installed wrapper keeps its constants when the plan keeps its shape.
        self.stats.reset(self.rate, self.budget)
        if renamed:  # its codes are filed under its name: compiled again
            self._forget_codes()
        self._set_expires(settings.get("expires"))

    def use_compiler(self, compiler: Any) -> None:
        """Compile this instrument's expressions with compiler(expr, filename) from now on."""
        # Compared by equality: a bound method (a policy's compile) is a new object at
        # each attribute read.
        if compiler != self.compiler:
            self.compiler = compiler
            self._forget_codes()

    def _forget_codes(self) -> None:
        self._codes.clear()
        self._plain.clear()
        self._facts_of.clear()

    def checks_calls(self) -> bool:
        """Return True when check_call() may say no: it or the manager's is overridden
        (compared by function, so a check_call patched on the instance counts too)."""
        mine = getattr(self.check_call, "__func__", None) is not Instrument.check_call
        return mine or overrides_check_call(self.mgr)

    def handle_error(self, probe: Any) -> None:
        """Stop firing after an error, record it, and hand it to the manager."""
        exc = sys.exc_info()[1]
        first = self.error is None
        self.error = one_line(exc, 500) if exc is not None else "error"
        if first and self.origin is not None:
            # Once per instrument until its spec changes (update() clears the error).
            OUTBOX.error(self.origin, self.name, self.error)
        if self.error_expiration:
            # Expired long ago: it stays silent until someone edits it or the process
            # restarts, so a broken expression costs one error per process, not per call.
            self.expires = self.error_expiration
        self.mgr.handle_error(probe, self)

    def finish(self) -> None:
        """Called after every call of the probed function (returned or raised), once all
        instruments fired: a hook for per-call flushing. Does nothing by default."""

    finish._diagnose_noop = True  # type: ignore[attr-defined]  # no call needed (see the gate)

    def __call__(self, f: Any) -> Any:
        """Use self as a decorator: attach a probe to the function for good."""
        func = underlying_function(f, getattr(f, "__qualname__", repr(f)))
        target = f"{func.__module__}.{func.__qualname__}".replace(".<locals>", "")
        probe = probes.attach_to(target)
        probe._bind(func)
        # A prefix no manager owns, so that no manager's apply() removes it.
        probe.instruments[f"hardcode:{hash(target)}:{id(self):x}"] = self
        probe.start()
        return f


def tag_dict(tags: Any) -> dict[str, Any]:
    """Return tags as a dict: a dict as it is, "key:value" strings split (a bare "key"
    maps to None), as get_tags() of older managers returned them."""
    if not tags:
        return {}
    if isinstance(tags, dict):
        return dict(tags)
    result: dict[str, Any] = {}
    for tag in tags:
        key, sep, value = str(tag).partition(":")
        result[key] = value if sep else None
    return result


def tag_list(tags: dict[str, Any]) -> list[str]:
    """Return tags as DogStatsD wants them, sorted: "key:value", or the bare key for None."""
    return sorted(str(k) if v is None else f"{k}:{v}" for k, v in tags.items())
