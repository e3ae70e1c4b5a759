"""Breakpoints: detect, block or fail a call to a target from another thread, in tests.

A Breakpoint records each call of its target that meets its condition in ``calls``;
``wait()`` returns once the target has been hit. ``Breakpoint.block(...)`` also holds
the calling thread until the test calls ``release()`` (or leaves the with-block), and
``Breakpoint.error(exc, ...)`` raises exc in it. ``do(func)`` runs func in a thread and
waits for it to reach a breakpoint::

    with do(worker.run).until("app.queue.Queue.get") as t:
        assert worker.is_waiting      # worker is held inside Queue.get
    assert t.results == [...]

Like probes, a Breakpoint swaps the target function's code, so every reference to the
function hits it, however it was imported.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from . import _inject
from ._resolve import resolve, underlying_function

__all__ = ("Breakpoint", "do")

omitted: Any = object()


class Breakpoint:
    """A tool to detect and synchronize execution or simulate errors during tests."""

    #: Kept for compatibility: the code swap reaches every reference in any case.
    patch_all_referrers = None

    def __init__(
        self,
        target: Any,
        event: str = "call",
        condition: Any = None,
        timeout: float | None = 10.0,
        fire: Callable[[], Any] | None = None,
    ) -> None:
        """target is a dotted path or an (object, attribute name) pair; event is "call",
        "return" or "error"; condition is None, a callable taking the target's arguments,
        or a call number (or list of numbers, from 0) on which to fire."""
        self.target = target
        self.event = event
        self.condition = condition
        self.timeout = timeout
        self.fire = fire
        self.calls: list[bool] = []
        self.hits = 0
        self.blocked = False
        self.stackframe: Any = None
        self.exception: BaseException | None = None
        self._started_threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._patch: Any = None

    # --- attaching ----------------------------------------------------------------

    def _function(self) -> Any:
        if isinstance(self.target, str):
            return resolve(self.target)
        owner, name = self.target
        return underlying_function(getattr(owner, name), f"{owner!r}.{name}")

    def __enter__(self) -> Breakpoint:
        self.calls = []
        self.hits = 0
        self._started_threads = []
        self.release()
        if self.target is not None:
            self._attach()
        return self

    def _attach(self) -> None:
        from . import probes

        func = self._function()
        with probes._lock:
            patch = probes.patch_for(func)
            patch.breakpoints.append(self)
            self._patch = patch
            try:
                patch.refresh()
            except BaseException:
                patch.detach(self)
                self._patch = None
                raise

    def _wrap(self, original: Any, inner: Any) -> Any:
        """Return code with original's parameters that hits this breakpoint around inner."""
        sections = _inject.Sections()
        sections.const("_dgn_bp", self)
        sig = _inject.Signature(original)
        sections.before.append(f"_dgn_bp._hit('call', {sig.args}, {sig.kwargs})")
        sections.on_error.append(f"_dgn_bp._hit('error', {sig.args}, {sig.kwargs})")
        sections.after.append(f"_dgn_bp._hit('return', {sig.args}, {sig.kwargs})")
        return _inject.build_wrapper_code(original, inner, sections, sig)

    def _detach(self) -> None:
        patch, self._patch = self._patch, None
        if patch is not None:
            patch.detach(self)

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
        if event == "call":
            self.stackframe = sys._getframe(1)
        if event != self.event:
            if event != "call":
                self.stackframe = None
            return
        try:
            if self._condition_met(args, kwargs) and self.fire is not None:
                self.fire()
        finally:
            if event != "call":
                self.stackframe = None

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
                met = bool(condition(*args, **kwargs))
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
                raise RuntimeError(f"Breakpoint on {self.target} not hit after {timeout} seconds.")

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

    def _need_target(self, what: str) -> None:
        if self.breakpoint.target is None:
            raise RuntimeError(
                f"You must call do().until(), .beyond(), or .error_on() before declaring .{what}."
            )

    @property
    def returns(self) -> do:
        """Fire when the target returns, not when it is called."""
        self._need_target("returns")
        self.breakpoint.event = "return"
        return self

    @property
    def errors(self) -> do:
        """Fire when the target raises, not when it is called."""
        self._need_target("errors")
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
        self.results.append(self.func(*self.args, **self.kwargs))

    def release(self) -> None:
        """Let the blocked thread go on."""
        self.breakpoint.release()
