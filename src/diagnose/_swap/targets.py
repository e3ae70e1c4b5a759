"""Find the Python function behind a dotted target path."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import types
from typing import Any

from diagnose.exceptions import NotAFunction, ProbeError, TargetImportError, TargetNotFound
from diagnose.spec import DOTTED_PATH_ERROR, is_dotted_path

__all__ = ("locate", "resolve", "resolve_target", "underlying_function")


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
    obj, rest = _import_longest(parts)
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
