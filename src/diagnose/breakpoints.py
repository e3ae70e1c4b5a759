"""Breakpoints: detect, block or fail a call to a target from another thread, in tests.

``Breakpoint(target, ...)`` records the calls that meet its condition; ``block()`` holds the
calling thread until ``release()``, ``error(exc)`` raises in it, and ``do(func).until(...)``
runs func in a thread until it reaches a breakpoint. Like probes, a Breakpoint swaps the
target's code, so every reference to the function hits it.
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable
from typing import Any, Literal

from diagnose._swap.breakpoint_layer import (
    _BUILTINS,
    _as_passed,
    _binder,
    _builtin_template,
    _instance_of,
    _keep_signature,
    _Layer,
    _layer_code,
    _module_globals_holding,
    _release_signature,
    _Replaced,
)
from diagnose._swap.targets import locate, resolve_target
from diagnose.exceptions import NotAFunction

__all__ = ("Breakpoint", "do")

omitted: Any = object()

EVENTS = ("call", "return", "error")


class Breakpoint:
    """A tool to detect and synchronize execution or simulate errors during tests."""

    #: Kept for compatibility: the code swap reaches every reference in any case.
    patch_all_referrers = None

    #: Kept for compatibility: waits wake as soon as their condition changes.
    check_interval = 0.1

    def __init__(
        self,
        target: Any,
        event: str = "call",
        condition: Any = None,
        timeout: float | None = 10.0,
        fire: Callable[[], Any] | None = None,
        *,
        break_on_return: bool = False,
        throw: BaseException | None = None,
        check_interval: float | None = None,
    ) -> None:
        """target is a dotted path, an (object, attribute name) pair, or the function or
        method object; event is "call", "return" or "error"; condition is None, a callable
        taking the target's arguments, or a call number (or list of numbers, from 0) on
        which to fire.

        The 3.x form ``Breakpoint(obj, "funcname", ...)`` is accepted too, with its
        meaning: it blocks the caller (or raises ``throw``), at the call or, with
        ``break_on_return``, at the return.
        """
        self.exception: BaseException | None = None
        if (
            isinstance(event, str)
            and event not in EVENTS
            and not isinstance(target, str | tuple)
            and hasattr(target, event)
        ):
            target = (target, event)
            event = "return" if break_on_return else "call"
            if throw is not None:
                self.exception = throw
                fire = self._fire_erroring
            elif fire is None:
                fire = self._fire_blocking
        self.target = target
        self.event = event
        self.condition = condition
        self.timeout = timeout
        self.fire = fire
        if check_interval is not None:
            self.check_interval = check_interval
        self.calls: list[bool] = []
        self.hits = 0
        self.blocked = False
        self.stackframe: Any = None
        self._started_threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._patch: Any = None
        self._instance: Any = None
        self._replaced: list[_Replaced] = []
        self._signed = False

    # --- attaching ----------------------------------------------------------------

    def _function(self) -> Any:
        return resolve_target(self.target)

    def __enter__(self) -> Breakpoint:
        self.calls = []
        self.hits = 0
        self._started_threads = []
        self.release()
        if self.target is not None:
            self._attach()
        return self

    def _attach(self) -> None:
        from diagnose import probes

        try:
            func = self._function()
        except NotAFunction:
            owner, name, obj = locate(self.target)
            if not isinstance(obj, _BUILTINS):
                raise
            self._replace_builtin(owner, name, obj)
            return
        self._instance = _instance_of(self.target)
        with probes._lock:
            patch = probes.patch_for(func)
            self._signed = _as_passed(patch.original) and _keep_signature(func)
            patch.breakpoints.append(self)
            self._patch = patch
            try:
                patch.refresh()
            except BaseException:
                self._detach()
                raise

    def _wrap(self, original: types.CodeType, inner: Any) -> types.CodeType:
        """Return code with original's parameters that hits this breakpoint around inner."""
        bind = _binder(original, inner) if _as_passed(original) else None
        return _layer_code(original, _Layer(self, inner, bind))

    def _replace_builtin(self, owner: Any, name: str, builtin: Any) -> None:
        """Break on a builtin, which has no code to swap: replace the references to it.

        As the original did: the attribute named (for a dotted path, also the module
        globals that hold it under the same name, as ``from os import rename`` makes).
        """
        inner = builtin
        if isinstance(builtin, types.MethodDescriptorType) and not isinstance(owner, type):
            inner = getattr(owner, name)  # (instance, "method"): the call passes no self
        code = _layer_code(_builtin_template.__code__, _Layer(self, inner))
        wrapper: Any = types.FunctionType(code, {}, getattr(builtin, "__name__", name))
        wrapper.__qualname__ = getattr(builtin, "__qualname__", name)
        wrapper.__doc__ = getattr(builtin, "__doc__", None)
        wrapper.__wrapped__ = builtin
        if isinstance(owner, type) and isinstance(builtin, types.BuiltinFunctionType):
            wrapper = staticmethod(wrapper)  # a builtin function stored on a class
        places = [(owner, name)]
        if isinstance(self.target, str) and isinstance(owner, types.ModuleType):
            places += _module_globals_holding(builtin, name, owner)
        for place, attr in places:
            own = attr in getattr(place, "__dict__", {})
            previous = vars(place)[attr] if own else None
            setattr(place, attr, wrapper)
            self._replaced.append(_Replaced(place, attr, own, previous, wrapper))

    def _detach(self) -> None:
        from diagnose import probes

        patch, self._patch = self._patch, None
        if patch is not None:
            with probes._lock:
                if self._signed:
                    self._signed = False
                    _release_signature(patch.func)
                patch.detach(self)
        while self._replaced:
            self._replaced.pop().restore()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        self._detach()
        self.release()
        while self._started_threads:
            self._started_threads.pop(0).join()
        if exc_type is not None or self.target is None:
            return False
        if isinstance(self.condition, int) and not isinstance(self.condition, bool):
            if len(self.calls) <= self.condition or not self.calls[self.condition]:
                raise AssertionError(
                    f"Breakpoint condition on {self.target} was not met for iteration "
                    f"{self.condition}."
                )
        elif isinstance(self.condition, set | tuple | list):
            missed = [c for c in self.condition if len(self.calls) <= c or not self.calls[c]]
            if missed:
                raise AssertionError(
                    f"Breakpoint condition on {self.target} was not met for iterations {missed}."
                )
        elif not any(self.calls):
            raise AssertionError(f"Breakpoint condition on {self.target} was not met.")
        return False

    # --- called from the target's thread -------------------------------------------

    def _hit(self, event: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._instance is not None and (not args or args[0] is not self._instance):
            return  # an (instance, "method") target: the calls through that instance only
        if event == self.event and self._condition_met(args, kwargs) and self.fire is not None:
            self.fire()

    def _condition_met(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        condition = self.condition
        with self._cond:
            if condition is None:
                met = True
            elif isinstance(condition, int) and not isinstance(condition, bool):
                met = len(self.calls) == condition
            elif isinstance(condition, set | tuple | list):
                met = len(self.calls) in condition
            elif callable(condition):
                met = condition(*args, **kwargs)  # kept as returned, as in the original
            else:
                raise TypeError(
                    "Breakpoint.condition must be None, an int or list of ints, or a callable."
                )
            self.calls.append(met)
            if met:
                self.hits += 1
                self._cond.notify_all()
        return met

    # --- for the test ---------------------------------------------------------------

    def start_thread(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run func in another thread, joined when the with-block exits."""
        name = getattr(func, "__name__", "func")
        thread = threading.Thread(
            target=func,
            name=f"Breakpoint_{name}_{len(self._started_threads)}",
            args=args,
            kwargs=kwargs,
            daemon=True,
        )
        self._started_threads.append(thread)
        thread.start()

    def join(self) -> None:
        """Wait for every thread started by this breakpoint to finish."""
        for thread in self._started_threads:
            thread.join()

    def wait(self, timeout: Any = omitted, hits: int = 1) -> None:
        """Block until the target has been hit `hits` times; RuntimeError after timeout."""
        if self.target is None:
            return
        if timeout is omitted:
            timeout = self.timeout
        with self._cond:
            if not self._cond.wait_for(lambda: self.hits >= hits, timeout):
                raise RuntimeError(
                    f"Breakpoint on {self.target} (event={self.event!r}) "
                    f"not hit after {timeout} seconds."
                )

    def wait_until(self, condition: Callable[[], Any], timeout: Any = omitted) -> None:
        """Block until condition() is true; RuntimeError after timeout."""
        if timeout is omitted:
            timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while not condition():
            if deadline is not None and time.monotonic() > deadline:
                raise RuntimeError(f"Condition for {self.target} not met after {timeout} seconds.")
            with self._cond:
                self._cond.wait(0.01)

    @classmethod
    def block(cls, *args: Any, **kwargs: Any) -> Breakpoint:
        """Create a Breakpoint that holds the calling thread until released."""
        self = cls(*args, **kwargs)
        self.fire = self._fire_blocking
        return self

    def _fire_blocking(self) -> None:
        with self._cond:
            self.blocked = True
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: not self.blocked, self.timeout):
                raise RuntimeError(
                    f"Breakpoint on {self.target} timed out after {self.timeout} seconds."
                )

    def release(self) -> None:
        """Let a blocked thread go on (until it hits the breakpoint again)."""
        with self._cond:
            self.hits = 0
            self.blocked = False
            self._cond.notify_all()

    @classmethod
    def error(cls, exception: BaseException, *args: Any, **kwargs: Any) -> Breakpoint:
        """Create a Breakpoint that raises exception in the calling thread."""
        self = cls(*args, **kwargs)
        self.exception = exception
        self.fire = self._fire_erroring
        return self

    def _fire_erroring(self) -> None:
        assert self.exception is not None
        raise self.exception


class do:  # noqa: N801 - the original library's name
    """Run a function in a thread and wait for it to reach a Breakpoint."""

    def __init__(self, func: Callable[..., Any] | None = None, *args: Any, **kwargs: Any) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.breakpoint = Breakpoint(None)
        self.results: list[Any] = []

    def until(self, target: Any, timeout: float | None = None) -> do:
        """Block the thread at target until the with-block ends."""
        self.breakpoint.target = target
        self.breakpoint.fire = self.breakpoint._fire_blocking
        if timeout is not None:
            self.breakpoint.timeout = timeout
        return self

    def beyond(self, target: Any, timeout: float | None = None) -> do:
        """Wait for the thread to pass target, without blocking it."""
        self.breakpoint.target = target
        if timeout is not None:
            self.breakpoint.timeout = timeout
        return self

    def error_on(self, target: Any, exception: BaseException, timeout: float | None = None) -> do:
        """Raise exception in the thread when it reaches target."""
        self.breakpoint.target = target
        self.breakpoint.exception = exception
        self.breakpoint.fire = self.breakpoint._fire_erroring
        if timeout is not None:
            self.breakpoint.timeout = timeout
        return self

    @property
    def returns(self) -> do:
        """Fire when the target returns, not when it is called (before or after until())."""
        self.breakpoint.event = "return"
        return self

    @property
    def errors(self) -> do:
        """Fire when the target raises, not when it is called (before or after until())."""
        self.breakpoint.event = "error"
        return self

    def where(self, condition: Any) -> do:
        """Fire only when condition is met."""
        self.breakpoint.condition = condition
        return self

    @property
    def once(self) -> do:
        """Fire only on the first call."""
        self.breakpoint.condition = 0
        return self

    def __enter__(self) -> do:
        self.breakpoint.__enter__()
        if self.func is not None:
            self.breakpoint.start_thread(self._gather_results)
            self.breakpoint.wait()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.breakpoint.__exit__(exc_type, exc, tb)

    def _gather_results(self) -> None:
        assert self.func is not None
        try:
            result = self.func(*self.args, **self.kwargs)
        except BaseException as exc:
            self.results.append(exc)  # then raised in the thread, as the original did
            raise
        self.results.append(result)

    def release(self) -> None:
        """Let the blocked thread go on."""
        self.breakpoint.release()
