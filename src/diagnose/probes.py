"""Probes: attach instruments to a target function, and detach them for good."""

from __future__ import annotations

import inspect
import os
import sys
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Any, cast

from . import _inject
from ._plan import Plan
from ._resolve import resolve

_getframe = sys._getframe

__all__ = ("FunctionProbe", "active_probes", "attach_to", "release", "start_all")

# Every FunctionProbe by target. One target has at most one probe: add instruments to
# it (attach_to) rather than making a second one.
active_probes: dict[str, FunctionProbe] = {}

# The patch on each probed function object, by id(). Two targets may name one function
# (``mod.f`` and ``other.f`` after ``from mod import f``); they share its patch.
_patches: dict[int, _Patch] = {}
_lock = threading.RLock()


def _reset_lock_in_child() -> None:
    # A thread that held the lock at fork() does not exist in the child.
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


def attach_to(target: str) -> FunctionProbe:
    """Return the probe attached to the given target, or a new one if needed."""
    with _lock:
        probe = active_probes.get(target)
        if probe is None:
            probe = FunctionProbe(target)
        return probe


def release(probe: FunctionProbe) -> None:
    """Stop and forget a probe that has no instruments left."""
    with _lock:
        if not probe.instruments:
            probe.stop()
            if active_probes.get(probe.target) is probe:
                del active_probes[probe.target]


def start_all() -> None:
    """Start every registered probe."""
    for probe in list(active_probes.values()):
        probe.start()


class _EndHook:
    """Called by the target's own code just before each return, for end instruments."""

    __slots__ = ("patch",)

    def __init__(self, patch: _Patch) -> None:
        self.patch = patch

    def __call__(self, frame: Any = None) -> None:
        # Runs on every return of the target while end instruments are live, so it does
        # the least it can; the wrapper already checked expiry before the call.
        plan = self.patch.plan
        if plan is None or not plan.ends:
            return
        ends = plan.ends
        if frame is None:
            frame = _getframe(1)
        f_locals = frame.f_locals
        other = plan.end_other_names
        for instrument, probe in ends:
            try:
                gns = instrument.mgr.global_namespace
                g = frame.f_globals
                if instrument._nested:
                    # A lambda or comprehension looks names up in its globals only.
                    g = ns = {**g, **gns, **f_locals}
                elif other is None or (other and not gns.keys().isdisjoint(other)):
                    ns = {**gns, **f_locals}
                else:
                    ns = f_locals
                if instrument._checks_calls and not instrument.check_call(probe):
                    continue
                instrument.fire(g, ns)
            except KeyboardInterrupt:
                raise
            except BaseException:
                plan.failed(instrument)


def patch_for(func: types.FunctionType) -> _Patch:
    """Return the patch on func, making it if needed (call with _lock held)."""
    patch = _patches.get(id(func))
    if patch is None or patch.func is not func:
        patch = _patches[id(func)] = _Patch(func)
    return patch


class _Patch:
    """The code swap on one function object, shared by its probes and breakpoints.

    The installed code is built in layers around the original: the probes' wrapper
    (when some instrument is live), then one wrapper per active Breakpoint. Whatever
    is added or removed, in any order, the layers are rebuilt from the original.
    """

    def __init__(self, func: types.FunctionType) -> None:
        self.func = func
        self.original = func.__code__
        self.plain = _inject.copy_function(func)
        self._hooked: Any = None
        self.end_hook = _EndHook(self)
        self.probes: list[FunctionProbe] = []
        self.breakpoints: list[Any] = []
        self.plan: Plan | None = None  # none until the first refresh()
        self.installed: types.CodeType | None = None
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

    def hooked(self) -> Any:
        """Return a copy of the function whose code fires end instruments before returning."""
        if self._hooked is None:
            code = _inject.with_return_hook(self.original, self.end_hook)
            self.codes.add(code)
            self._hooked = _inject.copy_function(self.func, code)
        return self._hooked

    def refresh(self) -> None:
        """Rebuild the plan from the probes' live instruments, and the installed layers."""
        with _lock:
            entries = []
            for probe in self.probes:
                for instrument in list(probe.instruments.values()):
                    if instrument.is_live():
                        entries.append((instrument, probe))
            plan = Plan(self, entries, self.original)
            code = self.original
            if plan.live:
                orig = self.hooked() if plan.ends else self.plain
                code = _inject.build_wrapper_code(self.original, orig, plan.sections(), plan.sig)
                for instrument, _probe in entries:
                    instrument._patches.add(self)
            for breakpoint in self.breakpoints:
                code = breakpoint._wrap(self.original, _inject.copy_function(self.func, code))
            self.plan = plan
            if code is self.original:
                self._restore()
                return
            if self.installed is not None and self.func.__code__ is not self.installed:
                raise RuntimeError(f"{self.func.__qualname__}'s code was replaced by someone else")
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
            self.refresh()
        except Exception:
            pass

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
        """Remove a probe or a breakpoint; with none left, put the original code back."""
        with _lock:
            if owner in self.probes:
                self.probes.remove(owner)
            if owner in self.breakpoints:
                self.breakpoints.remove(owner)
            self.refresh()
            if not self.probes and not self.breakpoints and _patches.get(id(self.func)) is self:
                del _patches[id(self.func)]


class InstrumentDict(dict):  # type: ignore[type-arg]
    """A probe's instruments by id; any change re-plans the probe at once."""

    def __init__(self, probe: FunctionProbe, items: Mapping[str, Any] | Iterable[Any] = ()) -> None:
        super().__init__(items)
        self._probe = probe

    def _changed(self) -> None:
        self._probe._instruments_changed()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._changed()
        return value

    def popitem(self) -> Any:
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._changed()
        return value

    # dict's __ior__ takes any mapping or pairs, its __or__ only a dict: mypy's check that
    # they agree fails for dict itself (typeshed silences it the same way).
    def __ior__(self, other: Any) -> InstrumentDict:  # type: ignore[misc]
        super().__ior__(other)
        self._changed()
        return self


class FunctionProbe:
    """A probe on one target function; ``instruments`` maps an id to an Instrument.

    start() attaches it: the target function's code is swapped for code that fires the
    instruments around (or, for ``end``, inside) the original. stop() puts the original
    code back. The function object stays the same, so every reference sees the probe.
    """

    def __init__(self, target: str, instruments: Mapping[str, Any] | None = None) -> None:
        with _lock:
            if target in active_probes:
                raise RuntimeError(
                    f"Cannot apply two probes to the same target {target!r}. "
                    "Try calling attach_to(target) instead of FunctionProbe(target)."
                )
            self.target = target
            self._patch: _Patch | None = None
            self._func: types.FunctionType | None = None
            self.instruments = InstrumentDict(self, instruments or {})
            active_probes[target] = self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(target={self.target!r}, instruments={dict(self.instruments)!r})"
        )

    __str__ = __repr__

    @property
    def func(self) -> types.FunctionType:
        """The Python function this probe's target names (resolved on first use)."""
        if self._func is None:
            self._func = resolve(self.target)
        return self._func

    def _bind(self, func: types.FunctionType) -> None:
        """Use func as the target function, without resolving the dotted path."""
        self._func = func

    def start(self) -> None:
        """Attach to the target; a no-op when already started. Raises ProbeError if missing."""
        with _lock:
            if self._patch is not None:
                return  # already started: every change to instruments re-plans at once
            # mypy applies FunctionType.__get__ to the property's value (MethodType).
            patch = patch_for(cast(types.FunctionType, self.func))
            patch.probes.append(self)
            self._patch = patch
            try:
                patch.refresh()
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Detach from the target: its original code is back, at no cost per call."""
        with _lock:
            patch, self._patch = self._patch, None
            if patch is not None:
                patch.detach(self)

    def _instruments_changed(self) -> None:
        patch = self._patch
        if patch is not None:
            patch.refresh()

    @property
    def started(self) -> bool:
        """True between start() and stop()."""
        return self._patch is not None

    @property
    def attached(self) -> bool:
        """True while the target runs the probe's code (some instrument is live)."""
        patch = self._patch
        return patch is not None and patch.installed is not None

    def __enter__(self) -> FunctionProbe:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        active_probes.pop(self.target, None)
