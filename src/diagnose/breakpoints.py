"""Breakpoints: detect, block or fail a call to a target from another thread, in tests.

A Breakpoint records each call of its target that meets its condition in ``calls``;
``wait()`` returns once the target has been hit. ``Breakpoint.block(...)`` also holds
the calling thread until the test calls ``release()`` (or leaves the with-block), and
``Breakpoint.error(exc, ...)`` raises exc in it. ``do(func)`` runs func in a thread and
waits for it to reach a breakpoint::

    with do(worker.run).until("app.queue.Queue.get") as t:
        assert worker.is_waiting      # worker is held inside Queue.get
    assert t.results == [...]

A target is a dotted path, an ``(object, "name")`` pair, or the function or method
itself. Like probes, a Breakpoint swaps the target function's code, so every reference
to the function hits it, however it was imported; an ``(instance, "method")`` pair hits
the calls through that instance only. A builtin (``"os.rename"``), which has no code to
swap, is replaced at the attribute named (and, for a path, in the modules that imported
it under that name) until the with-block ends. While a call is inside the target,
``stackframe`` is the call's frame: its ``f_locals`` hold ``args`` and ``kwargs`` as the
call passed them and each parameter by name, and its ``f_back`` is the caller.
"""

from __future__ import annotations

import inspect
import re
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any, Literal

from . import _inject
from ._resolve import locate, resolve_target
from .exceptions import NotAFunction

__all__ = ("Breakpoint", "do")

omitted: Any = object()

EVENTS = ("call", "return", "error")

# The generated layer reaches its objects through this constant, replaced in the code
# object by the _Layer: an attribute of a constant needs no local name in the frame.
_LAYER = "__diagnose_breakpoint_layer__"


class _Layer:
    """What one breakpoint's code layer on one function calls: a guard per call, the inner."""

    __slots__ = ("bind", "breakpoint", "inner")

    def __init__(self, breakpoint: Breakpoint, inner: Any, bind: Any = None) -> None:
        self.breakpoint = breakpoint
        self.inner = inner
        self.bind = bind

    def guard(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Guard:
        return _Guard(self.breakpoint, args, kwargs)


class _Guard:
    """Hits the breakpoint as one call enters the target, and as it returns or raises."""

    __slots__ = ("args", "breakpoint", "frame", "kwargs")

    def __init__(self, breakpoint: Breakpoint, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.breakpoint = breakpoint
        self.args = args
        self.kwargs = kwargs
        self.frame: Any = None

    def __enter__(self) -> None:
        bp = self.breakpoint
        # The layer's own frame: the target's parameters, args and kwargs; f_back the caller.
        self.frame = bp.stackframe = sys._getframe(1)
        try:
            bp._hit("call", self.args, self.kwargs)
        except BaseException:
            bp.stackframe = None
            raise

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        bp = self.breakpoint
        try:
            if exc_type is None:
                bp._hit("return", self.args, self.kwargs)
            else:
                if tb is not None and tb.tb_frame is self.frame:
                    exc.__traceback__ = tb.tb_next  # the exception is the target's own
                if issubclass(exc_type, Exception):
                    bp._hit("error", self.args, self.kwargs)
        finally:
            bp.stackframe = None
            self.frame = None
        return False


def _as_passed(code: types.CodeType) -> bool:
    """Return True when a layer on code can take ``(*args, **kwargs)`` as the call passed
    them: the target has no parameter or free variable of those names."""
    sig = _inject.Signature(code)
    return not {"args", "kwargs"} & (set(sig.names) | set(code.co_freevars))


def _binder(original: types.CodeType, inner: Any) -> Any:
    """Return a function with the target's parameters (and inner's defaults) that returns
    them as a tuple: it binds a call's arguments, or raises the target's own TypeError."""
    sig = _inject.Signature(original)
    names = "".join(f"{n}, " for n in sig.names)
    source = (
        "def __diagnose_factory__():\n"
        f"    def __dgn_bind__({sig.params}):\n"
        f"        return ({names})\n"
        "    return __dgn_bind__"
    )
    code = _inject._compile_wrapper(source, original.co_filename)
    code = code.replace(co_name=original.co_name, co_qualname=original.co_qualname)
    bind = types.FunctionType(code, {}, original.co_name, getattr(inner, "__defaults__", None))
    bind.__kwdefaults__ = getattr(inner, "__kwdefaults__", None)
    return bind


def _layer_code(original: types.CodeType, layer: _Layer) -> types.CodeType:
    """Return code for a function like original that runs layer.inner inside a _Guard.

    Its frame's only names, while the breakpoint can see it, are ``args`` and
    ``kwargs`` as the call passed them, each parameter by name (defaults applied) and
    the target's free variables: what it needs besides is reached through constants,
    and the names of the call's plumbing are deleted before the guard sees the outcome.
    A target with a parameter named ``args`` or ``kwargs`` gets a layer with its own
    parameters instead, where ``args`` and ``kwargs`` (unless they are its parameters)
    are its positional and keyword-only parameters.
    """
    kind = _inject.kind_of(original)
    sig = _inject.Signature(original)
    own = set(sig.names) | set(original.co_freevars)
    clash = {n for n in own if n.startswith("_dgn_")}
    if clash:
        raise ValueError(f"cannot set a breakpoint on a function with names {sorted(clash)}")
    body: list[str] = []
    if original.co_freevars:
        body.append("if 0: " + "; ".join(original.co_freevars))
    if _as_passed(original):
        params = forward = "*args, **kwargs"
        args, kwargs = "args", "kwargs"
        if sig.names:
            # A call that does not bind leaves the names unset; the target raises as usual.
            body += [
                "try:",
                f'    {", ".join(sig.names)}, = "{_LAYER}".bind(*args, **kwargs)',
                "except TypeError:",
                "    pass",
            ]
    else:
        params, forward = sig.params, sig.forward
        args, kwargs = sig.args, sig.kwargs
        if "args" not in own:
            body.append(f"args = {args}")
            args = "args"
        if "kwargs" not in own:
            body.append(f"kwargs = {kwargs}")
            kwargs = "kwargs"
    invoke = [f'_dgn_o = "{_LAYER}".inner', *_inject._invoke_lines(kind, forward)]
    if kind != _inject.Kind.ASYNC_GENERATOR:
        invoke.append("return _dgn_r")
    plumbing = sorted(set(re.findall(r"\b_dgn_\w+", "\n".join(invoke))))
    body.append(f'with "{_LAYER}".guard({args}, {kwargs}):')
    body.append("    try:")
    body += ["        " + line for line in invoke]
    body.append("    finally:")
    body.append("        " + " = ".join(plumbing) + " = None")
    body.append("        del " + ", ".join(plumbing))

    is_async = kind in (_inject.Kind.COROUTINE, _inject.Kind.ASYNC_GENERATOR)
    prefix = "async def" if is_async else "def"
    lines = ["def __diagnose_factory__():"]
    if original.co_freevars:
        lines.append("    " + " = ".join(original.co_freevars) + " = None")
    lines.append(f"    {prefix} __dgn_breakpoint__({params}):")
    lines += ["        " + line for line in body]
    lines.append("    return __dgn_breakpoint__")
    code = _inject._compile_wrapper("\n".join(lines), original.co_filename)
    if code.co_freevars != original.co_freevars:
        raise ValueError(f"free variables differ: {code.co_freevars} != {original.co_freevars}")
    consts = tuple(layer if isinstance(c, str) and c == _LAYER else c for c in code.co_consts)
    return code.replace(
        co_consts=consts,
        co_flags=code.co_flags | (original.co_flags & _inject._CO_ITERABLE_COROUTINE),
        co_name=original.co_name,
        co_qualname=original.co_qualname,
        co_firstlineno=original.co_firstlineno,
    )


# The signatures breakpoints put on functions whose layer takes (*args, **kwargs), so
# that inspect.signature() still answers for the target: {id(func): [signature, users]}.
_signatures: dict[int, list[Any]] = {}


def _keep_signature(func: Any) -> bool:
    """Hold the function's signature in __signature__ while an as-passed layer is on it;
    return False when someone else's __signature__ is there already."""
    held = _signatures.get(id(func))
    if held is not None:
        held[1] += 1
        return True
    if "__signature__" in vars(func):
        return False
    signature = inspect.signature(func, follow_wrapped=False)
    func.__signature__ = signature
    _signatures[id(func)] = [signature, 1]
    return True


def _release_signature(func: Any) -> None:
    held = _signatures.get(id(func))
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _signatures[id(func)]
        if vars(func).get("__signature__") is held[0]:
            del func.__signature__


def _instance_of(target: Any) -> Any:
    """For an (instance, "method") target, return the instance; else None.

    The original patched the attribute on that one object, so only calls through it
    hit the breakpoint; the code swap reaches every instance, so the hits are filtered.
    """
    if not isinstance(target, tuple) or len(target) != 2:
        return None
    owner, name = target
    if isinstance(owner, type | types.ModuleType):
        return None
    if name in getattr(owner, "__dict__", {}):
        return None  # the object's own attribute: a function stored on it, called as is
    attr = inspect.getattr_static(type(owner), name, None)
    return owner if isinstance(attr, types.FunctionType | property) else None


def _builtin_template(*args: Any, **kwargs: Any) -> None:
    """The parameters of the layer put in place of a builtin."""


_BUILTINS = (types.BuiltinFunctionType, types.MethodDescriptorType)

# Modules whose references to a builtin a breakpoint leaves alone: its own waiting
# (threading's Condition, diagnose) must not hit it.
_UNTOUCHED = ("threading", "diagnose")


def _module_globals_holding(obj: Any, name: str, skip: Any) -> list[tuple[Any, str]]:
    """Return (module, name) for each other module whose global `name` is obj."""
    found = []
    for module in list(sys.modules.values()):
        module_name = getattr(module, "__name__", "")
        if module is skip or module_name.split(".")[0] in _UNTOUCHED:
            continue
        try:
            if vars(module).get(name) is obj:
                found.append((module, name))
        except TypeError:
            continue
    return found


class _Replaced:
    """One reference to a builtin replaced by a breakpoint's wrapper, and how to undo it."""

    __slots__ = ("name", "new", "own", "place", "previous")

    def __init__(self, place: Any, name: str, own: bool, previous: Any, new: Any) -> None:
        self.place, self.name, self.own, self.previous, self.new = (
            place,
            name,
            own,
            previous,
            new,
        )

    def restore(self) -> None:
        if vars(self.place).get(self.name) is not self.new:
            return  # replaced again since: leave it
        if self.own:
            setattr(self.place, self.name, self.previous)
        else:
            delattr(self.place, self.name)


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
        from . import probes

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
        from . import probes

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
