"""The code swap on one function object, shared by its probes and breakpoints.

A Patch installs layers around the function's original code (the probes' wrapper, then one
per active Breakpoint), rebuilt from the original on every change; with nothing left the
original code object is put back. A change that keeps the plan's shape (the same live
instruments, edited in place: see ``plan.shape``) only swaps the wrapper's deadline
constant, and only when the deadline comes sooner: a later one waits until the installed
one passes (see ``Patch.retune``). Invariant: nothing here outlives the probe that needed it.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
import types
import weakref
from typing import Any

from diagnose._swap import codegen
from diagnose._swap.plan import DEADLINE, Plan, shape
from diagnose.exceptions import ProbeError
from diagnose.fork import LOCKS, after_fork_in_child

__all__ = ("Patch", "deferred_refresh", "lock", "patch_for")

_getframe = sys._getframe

# Held while any patch changes. One object for the life of the process: reinitialised
# in place after fork() (a thread that held it then does not exist in the child).
lock = threading.RLock()

# The patch on each probed function object, by id(). Two targets may name one function
# (``mod.f`` and ``other.f`` after ``from mod import f``); they share its patch.
_patches: dict[int, Patch] = {}


# While not None (inside deferred_refresh), the patches whose refresh waits for its end.
_pending: dict[int, Patch] | None = None


def deferred_refresh() -> _DeferredRefresh:
    """Hold the lock and re-plan each patch changed in the block once, at its end.

    Applying N specs to one target would otherwise build N wrappers of 1..N gates (the
    cost grows as N squared); the target runs its previous plan until the block ends.
    """
    return _DeferredRefresh()


class _DeferredRefresh:
    """The block of deferred_refresh() (a class: every apply enters one)."""

    __slots__ = ("_outer",)

    def __enter__(self) -> None:
        global _pending
        lock.acquire()
        self._outer = _pending is None  # nested: the outer block refreshes
        if self._outer:
            _pending = {}

    def __exit__(self, *exc_info: object) -> None:
        global _pending
        try:
            if self._outer:
                pending, _pending = _pending, None
                for patch in (pending or {}).values():
                    patch.expired()
        finally:
            lock.release()


@after_fork_in_child(LOCKS)
def _reset_lock_in_child() -> None:
    lock._at_fork_reinit()  # type: ignore[attr-defined]


def patch_for(func: types.FunctionType) -> Patch:
    """Return the patch on func, making it if needed (call with lock held)."""
    patch = _patches.get(id(func))
    if patch is None or patch.func is not func:
        patch = _patches[id(func)] = Patch(func)
    return patch


def _hook(patch: Patch, site: int | None) -> Any:
    """Return the function the target's own (hooked) code calls at a site: just before
    each return (site None) or each time line ``site`` is about to run.

    It is a constant of that code, so it holds its patch weakly (see the module
    docstring). It runs on every pass of the target, so it does the least it can: the
    wrapper already checked expiry, and the common gate (see ``Site``) fires inline, with
    the gate's own steps (``Gate._evaluate``) for the evaluations it times.
    """
    ref = weakref.ref(patch)

    def hook() -> None:
        patch = ref()
        plan = patch.plan if patch is not None else None
        here = plan.sites.get(site) if plan is not None else None
        if here is None:
            return
        frame = _getframe(1)
        f_globals = frame.f_globals
        f_locals: Any = frame.f_locals
        if here.with_frame:
            f_locals = {**f_locals, "frame": frame}
        for gate in here.gates:
            stats = gate.stats
            if gate.direct and stats.fired < stats.next_timed:
                try:
                    gate.instrument.fire(f_globals, f_locals)
                    stats.fired += 1
                except KeyboardInterrupt:
                    raise
                except BaseException:
                    gate.failed()
            else:
                gate.fire_in_frame(f_globals, f_locals, here.other_names)

    return hook


def check_line(func: Any, line: int) -> None:
    """Raise ProbeError unless line is a line of func with code of its own."""
    code = func.__code__
    patch = _patches.get(id(func))
    if patch is not None and patch.func is func:
        code = patch.original
    lines = codegen.code_lines(code)
    if line not in lines:
        where = f"{code.co_filename}, line {line}"
        raise ProbeError(
            f"{where} is not a line with code in {func.__module__}.{func.__qualname__} "
            f"(its lines with code: {_ranges(sorted(lines))})"
        )


def _ranges(lines: list[int]) -> str:
    """Return 3-5, 8, 10-11 for [3, 4, 5, 8, 10, 11]."""
    parts = []
    start = prev = None
    for n in [*lines, None]:
        if n is not None and prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    return ", ".join(parts) or "none"


class Patch:
    """The layered code installed on one function object (see the module docstring)."""

    def __init__(self, func: types.FunctionType) -> None:
        self.func = func
        self.original = func.__code__
        self.plain = codegen.copy_function(func)
        self._hooked: Any = None
        self._hooked_for: tuple[bool, frozenset[int]] | None = None
        self.probes: list[Any] = []
        self.breakpoints: list[Any] = []
        self.plan: Plan | None = None  # none until the first refresh()
        self.installed: types.CodeType | None = None
        # The probes' wrapper as built for the plan (the installed code, unless breakpoints
        # wrap it), and the index of its deadline constant.
        self._wrapper: types.CodeType | None = None
        self._deadline_slot: int | None = None
        #: how many times the plan was rebuilt, and retuned (see refresh())
        self.rebuilds = self.retunes = 0
        self.codes: set[types.CodeType] = {self.original}
        self._signature: inspect.Signature | None = None
        self._set_signature = False

    @property
    def signature(self) -> inspect.Signature:
        """The target's signature. A generic wrapper takes (*args, **kwargs); while it is
        attached, __signature__ keeps inspect.signature() answering for the target itself."""
        if self._signature is None:
            # From the copy: func itself may run a wrapper's code by now.
            self._signature = inspect.signature(self.plain, follow_wrapped=False)
        return self._signature

    @property
    def label(self) -> str:
        """The name of the target, as probe frames show it in tracebacks."""
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def hooked(self, plan: Plan) -> Any:
        """Return a copy of the function whose code calls the plan's hooks: end instruments
        before each return, line instruments at their lines (one copy, for the current
        set of hooks)."""
        if self._hooked is None or self._hooked_for != plan.hooks:
            ends, lines = plan.hooks
            for line in lines:
                check_line(self.func, line)
            code = codegen.with_hooks(
                self.original,
                _hook(self, None) if ends else None,
                {line: _hook(self, line) for line in lines},
            )
            self.codes = {self.original, code}
            self._hooked = codegen.copy_function(self.func, code)
            self._hooked_for = plan.hooks
        return self._hooked

    def refresh(self, now: bool = False) -> None:
        """Bring the plan and the installed layers up to the probes' live instruments (at
        the end of a deferred_refresh block, unless now is True): retuned when the plan
        keeps its shape, else rebuilt."""
        with lock:
            if _pending is not None and not now:
                _pending[id(self)] = self
                return
            entries = []
            for probe in self.probes:
                for instrument in list(probe.instruments.values()):
                    if instrument.is_live():
                        entries.append((instrument, probe))
            if not self._retune(entries):
                self._rebuild(entries)

    def _retune(self, entries: list[tuple[Any, Any]]) -> bool:
        """Take the change by swapping the installed wrapper's deadline constant, when the
        plan fits entries (see Plan.fits) and nothing else wraps or replaced the wrapper;
        return False when the plan must be rebuilt."""
        plan, code = self.plan, self._wrapper
        if not self._swappable(plan, code) or not plan.fits(entries):  # type: ignore[union-attr]
            return False
        assert plan is not None and code is not None
        return self._swap_deadline(plan, code, plan.soonest_deadline())

    def _rebuild(self, entries: list[tuple[Any, Any]]) -> None:
        """Make a new plan of entries, and install its layers."""
        self.rebuilds += 1
        self._wrapper = self._deadline_slot = None
        plan = Plan(self, entries, self.original)
        code = self.original
        if plan.live:
            orig = self.hooked(plan) if plan.ends or plan.lines else self.plain
            slots: dict[str, int] = {}
            code = codegen.build_wrapper_code(
                self.original, orig, plan.sections(), plan.sig, label=self.label, slots=slots
            )
            self._wrapper, self._deadline_slot = code, slots.get(DEADLINE)
            for instrument, _probe in entries:
                instrument.watch_expiry(self._expiry_changed)
        for breakpoint in self.breakpoints:
            code = breakpoint._wrap(self.original, codegen.copy_function(self.func, code))
        self.plan = plan
        if code is self.original:
            self._restore()
            return
        if self.installed is not None and self.func.__code__ is not self.installed:
            raise ProbeError(f"{self.func.__qualname__}'s code was replaced by someone else")
        if not plan.live or plan.sig.exact:
            self._drop_signature()
        elif "__signature__" not in vars(self.func):
            self.func.__signature__ = self.signature  # type: ignore[attr-defined]
            self._set_signature = True
        self.func.__code__ = code
        self.installed = code

    def expired(self) -> None:
        """Drop instruments that stopped firing; called from the target's own call path."""
        try:
            self.refresh(now=True)
        except Exception:
            pass

    def _expiry_changed(self) -> None:
        """An instrument's ``expires`` changed: refresh, once at the end of a
        deferred_refresh block (an apply) if inside one."""
        try:
            self.refresh()
        except Exception:
            pass

    def retune(self, instrument: Any) -> None:
        """Take a change made in place to one of the plan's instruments (and to nothing
        else): swap the deadline into the installed wrapper when the instrument keeps its
        shape, else refresh (once at the end of a deferred_refresh block, if inside one)."""
        with lock:
            pending = _pending is not None and id(self) in _pending
            if pending or not self._retune_one(instrument):
                self.refresh()

    def _retune_one(self, instrument: Any) -> bool:
        # Written out (no helpers, no comprehensions): it runs at each edit, where every
        # function the interpreter enters costs its cold start.
        plan, code = self.plan, self._wrapper
        if not self._swappable(plan, code):
            return False
        assert plan is not None and code is not None
        index = -1
        deadline: float | None = None
        for i, gate in enumerate(plan.gates):
            if gate.instrument is instrument:
                index = i
            at = gate.instrument.deadline
            if at is not None and (deadline is None or at < deadline):
                deadline = at
        if index < 0:
            return False  # not in the plan (it had expired): planned again
        if shape(instrument) != plan.shapes[index]:
            return False
        if deadline is not None and deadline <= time.time():
            return False  # an instrument expired: planned without it
        if deadline is not None and plan.deadline is not None and deadline > plan.deadline:
            # Later than the installed one: the wrapper keeps its code until the earlier
            # deadline passes; the call that finds it passed re-plans, and goes on firing
            # (Plan.expired). A re-published spec makes no new code object in the host.
            self.retunes += 1
            return True
        return self._swap_deadline(plan, code, deadline)

    def _swap_deadline(self, plan: Plan, code: types.CodeType, deadline: float | None) -> bool:
        """Put deadline in the installed wrapper (as its plan's); False if it has no slot."""
        if deadline != plan.deadline:
            slot = self._deadline_slot
            if deadline is None or plan.deadline is None or slot is None:
                return False
            consts = list(code.co_consts)
            consts[slot] = deadline
            code = code.replace(co_consts=tuple(consts))
            plan.deadline = deadline
            self.func.__code__ = self.installed = self._wrapper = code
        self.retunes += 1
        return True

    def _swappable(self, plan: Plan | None, code: types.CodeType | None) -> bool:
        """Tell whether the installed code is the plan's wrapper, ours alone (no breakpoint
        wraps it, nobody replaced it), for a deadline swap."""
        return (
            plan is not None
            and plan.live
            and code is not None
            and not self.breakpoints
            and self.installed is code
            and self.func.__code__ is code
        )

    def _restore(self) -> None:
        if self.installed is not None:
            if self.func.__code__ is self.installed:
                self.func.__code__ = self.original
            self.installed = None
        self._drop_signature()

    def _drop_signature(self) -> None:
        if self._set_signature:
            vars(self.func).pop("__signature__", None)
            self._set_signature = False

    def detach(self, owner: Any) -> None:
        """Remove a probe or a breakpoint; with none left, put the original code back and
        forget this patch (its plan, hooked copy and wrappers go with it)."""
        with lock:
            if owner in self.probes:
                self.probes.remove(owner)
            if owner in self.breakpoints:
                self.breakpoints.remove(owner)
            # At once when nothing is left: a new patch on this function (made before a
            # deferred refresh ran) must find the original code installed.
            self.refresh(now=not self.probes and not self.breakpoints)
            if not self.probes and not self.breakpoints:
                if _patches.get(id(self.func)) is self:
                    del _patches[id(self.func)]
                self.plan = None
                self._hooked = self._hooked_for = None
                self.codes = {self.original}
