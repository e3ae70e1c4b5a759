"""Find the Python function behind a dotted target path."""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

from diagnose.exceptions import (
    NotAFunction,
    ProbeError,
    TargetImportError,
    TargetNotFound,
    TargetNotImported,
)
from diagnose.spec import DOTTED_PATH_ERROR, is_dotted_path

__all__ = (
    "NOT_IMPORTED",
    "import_in_progress",
    "locate",
    "resolve",
    "resolve_target",
    "still_booting",
    "underlying_function",
)

#: How the error text of a target left for later begins (see still_booting()).
NOT_IMPORTED = TargetNotImported.__name__ + ":"

# Set in the threads of a background service (the fleet subscriber) for an apply.
_background = threading.local()


@contextlib.contextmanager
def still_booting(imports_after: float) -> Iterator[None]:
    """In this block (a background thread's apply), import no module of a target that the
    host has not imported, nor touch one it is importing: raise TargetNotImported instead,
    to be tried again. After imports_after (time.monotonic()) a module nobody imports is
    imported, while no other import is in progress (the host's boot is over by then).

    The host's own import takes the module's lock; one of ours beside it could deadlock
    (under gevent, where real threads and greenlets share the patched locks, for ever),
    and would run the module's top-level code in our thread.
    """
    previous = getattr(_background, "imports_after", None)
    _background.imports_after = imports_after
    try:
        yield
    finally:
        _background.imports_after = previous


def _initializing(module: Any) -> bool:
    """Tell whether a module is being imported, without running any code of its own (a
    lazy module's attribute access would import it)."""
    try:
        spec = object.__getattribute__(module, "__dict__").get("__spec__")
    except (AttributeError, TypeError):
        return False
    return type(spec).__name__ == "ModuleSpec" and spec.__dict__.get("_initializing") is True


def import_in_progress() -> bool:
    """Tell whether some thread is importing a module now (one is partly initialised)."""
    return any(_initializing(m) for m in list(sys.modules.values()))


def _imported_longest(parts: list[str], imports_after: float) -> tuple[Any, list[str]] | None:
    """Return the longest prefix of parts imported already (and the rest), without importing;
    None when a module of the path is not imported and may be now (after the boot)."""
    for cut in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:cut])
        module = sys.modules.get(name)
        if module is None:
            continue
        if _initializing(module):
            raise TargetNotImported(f"module {name} is being imported; applied once it is")
        following = parts[cut] if cut < len(parts) - 1 else None
        if following is None or hasattr(module, following):
            return module, parts[cut:]
        if getattr(module, "__path__", None) is None:
            return module, parts[cut:]  # not a package: no submodule; the walk says what
        try:
            found = importlib.util.find_spec(f"{name}.{following}") is not None
        except Exception:
            found = False
        if not found:
            return module, parts[cut:]
        break
    else:
        try:
            if importlib.util.find_spec(parts[0]) is None:
                return None  # no such module: the import says so
        except Exception:
            return None
    if time.monotonic() >= imports_after and not import_in_progress():
        return None
    raise TargetNotImported(f"the module of {'.'.join(parts)} is not imported yet")


def _import_longest(parts: list[str]) -> tuple[Any, list[str]]:
    """Import the longest importable module prefix of parts; return it and the rest."""
    error: BaseException | None = None
    for cut in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:cut])
        try:
            return importlib.import_module(name), parts[cut:]
        except ModuleNotFoundError as exc:
            if exc.name is not None and not name.startswith(exc.name) and exc.name != name:
                error = exc
                break
            continue
        except BaseException as exc:  # an import that fails in its own code
            error = exc
            break
    if error is not None:
        raise TargetImportError(
            f"cannot import {'.'.join(parts)}: {type(error).__name__}: {error}"
        ) from None
    raise TargetImportError(f"no module found for target {'.'.join(parts)!r}")


def _static_attribute(owner: Any, name: str) -> Any:
    """Return owner's attribute without binding it: through vars() along the MRO for classes.

    getattr() on a class would turn a staticmethod, classmethod or property into what it
    gives, and we need the descriptor itself to reach the function it holds.
    """
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if name in vars(klass):
                return vars(klass)[name]
    return getattr(owner, name)


def underlying_function(obj: Any, target: str = "") -> types.FunctionType:
    """Return the Python function that obj calls: unwrap descriptors, partials, decorators."""
    seen = 0
    while seen < 100:
        seen += 1
        if isinstance(obj, staticmethod | classmethod):
            obj = obj.__func__
        elif isinstance(obj, property):
            if obj.fget is None:
                raise NotAFunction(f"{target} is a property without a getter")
            obj = obj.fget
        elif isinstance(obj, functools.cached_property):
            obj = obj.func
        elif isinstance(obj, types.MethodType):
            obj = obj.__func__
        elif isinstance(obj, functools.partial):
            obj = obj.func
        elif isinstance(obj, types.FunctionType):
            wrapped = getattr(obj, "__wrapped__", None)
            if wrapped is None:
                return obj
            obj = wrapped
        elif hasattr(obj, "__wrapped__"):
            obj = obj.__wrapped__
        else:
            kind = "a class" if inspect.isclass(obj) else f"a {type(obj).__name__}"
            raise NotAFunction(f"{target} is {kind}, not a Python function")
    raise NotAFunction(f"{target}: too many wrappers to unwrap")


def _walk(target: str) -> tuple[Any, str, Any]:
    """Return the owner, the last name and the attribute a dotted path names (not unwrapped)."""
    if not is_dotted_path(target):
        raise ProbeError(DOTTED_PATH_ERROR.format(target))
    parts = target.split(".")
    imports_after = getattr(_background, "imports_after", None)
    found = None if imports_after is None else _imported_longest(parts, imports_after)
    obj, rest = found if found is not None else _import_longest(parts)
    path = obj.__name__
    owner = obj
    for name in rest:
        owner = obj
        try:
            obj = _static_attribute(obj, name)
        except AttributeError:
            what = "attribute or submodule" if inspect.ismodule(obj) else "attribute"
            raise TargetNotFound(f"{path} has no {what} {name!r}") from None
        path = f"{path}.{name}"
    return owner, parts[-1], obj


def resolve(target: str) -> types.FunctionType:
    """Return the Python function a dotted target names; raise ProbeError if there is none."""
    return underlying_function(_walk(target)[2], target)


def _label(owner: Any) -> str:
    """Name an owner object in messages: a module or class by its dotted name."""
    if inspect.ismodule(owner):
        return owner.__name__
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    return repr(owner)


def _pair(target: tuple[Any, ...]) -> tuple[Any, str, Any]:
    """Return the owner, name and attribute of an (object, "name") target."""
    if len(target) != 2 or not isinstance(target[1], str):
        raise TypeError(
            f"a target pair must be (object, attribute name as a string), not {target!r}"
        )
    owner, name = target
    try:
        # Without binding or running it: a property on an instance is not evaluated.
        obj = inspect.getattr_static(owner, name)
    except AttributeError:
        try:
            obj = getattr(owner, name)  # a module __getattr__, a proxy's attributes
        except AttributeError:
            raise TargetNotFound(f"{_label(owner)} has no attribute {name!r}") from None
    return owner, name, obj


def locate(target: Any) -> tuple[Any, str, Any]:
    """Return (owner, name, attribute) for a target, the attribute as found (not unwrapped).

    For what has no code to swap (a builtin function), this is the reference that can
    be replaced instead: the path's or pair's attribute, or for a builtin function
    object, the attribute of its module that holds it.
    """
    if isinstance(target, str):
        return _walk(target)
    if isinstance(target, tuple):
        return _pair(target)
    module = sys.modules.get(getattr(target, "__module__", None) or "")
    name = getattr(target, "__name__", None)
    if module is not None and name and getattr(module, name, None) is target:
        return module, name, target
    raise TypeError(f"cannot find where {target!r} is referenced")


def resolve_target(target: Any) -> types.FunctionType:
    """Return the Python function a target names, in any of the forms the original accepted.

    target is a dotted path, an ``(object, "name")`` pair, or the function or method
    object itself (bound or unbound, decorated or not). Each form gives the same
    function as the dotted path of the same target: the innermost one, whose code a
    probe or breakpoint swaps.
    """
    if isinstance(target, str):
        return resolve(target)
    if isinstance(target, tuple):
        owner, name, obj = _pair(target)
        return underlying_function(obj, f"{_label(owner)}.{name}")
    if callable(target) or isinstance(target, staticmethod | classmethod | property):
        name = getattr(target, "__qualname__", None) or repr(target)
        return underlying_function(target, name)
    raise TypeError(
        f"a target is a dotted path, an (object, attribute name) pair or a function, not {target!r}"
    )
