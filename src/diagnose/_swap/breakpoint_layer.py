"""How a Breakpoint gets into its target: the generated layer of code around the target
(``_layer_code``; its frame is the call's ``stackframe``), and the replacement of a
builtin, which has no code to swap (``_Replaced``).
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from typing import TYPE_CHECKING, Any, Literal

from diagnose._swap import codegen

if TYPE_CHECKING:
    from diagnose.breakpoints import Breakpoint


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
    sig = codegen.Signature(code)
    return not {"args", "kwargs"} & (set(sig.names) | set(code.co_freevars))


def _binder(original: types.CodeType, inner: Any) -> Any:
    """Return a function with the target's parameters (and inner's defaults) that returns
    them as a tuple: it binds a call's arguments, or raises the target's own TypeError."""
    sig = codegen.Signature(original)
    names = "".join(f"{n}, " for n in sig.names)
    source = (
        "def __diagnose_factory__():\n"
        f"    def __dgn_bind__({sig.params}):\n"
        f"        return ({names})\n"
        "    return __dgn_bind__"
    )
    code = codegen._compile_wrapper(source, original.co_filename)
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
    kind = codegen.kind_of(original)
    sig = codegen.Signature(original)
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
    invoke = [f'_dgn_o = "{_LAYER}".inner', *codegen._invoke_lines(kind, forward)]
    if kind != codegen.Kind.ASYNC_GENERATOR:
        invoke.append("return _dgn_r")
    plumbing = sorted(set(re.findall(r"\b_dgn_\w+", "\n".join(invoke))))
    body.append(f'with "{_LAYER}".guard({args}, {kwargs}):')
    body.append("    try:")
    body += ["        " + line for line in invoke]
    body.append("    finally:")
    body.append("        " + " = ".join(plumbing) + " = None")
    body.append("        del " + ", ".join(plumbing))

    code = codegen.compile_like(original, params, body, {_LAYER: layer}, original.co_filename)
    return codegen.at_def_line(code, original)


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
