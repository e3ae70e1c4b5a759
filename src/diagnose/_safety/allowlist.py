"""The allowlist of the safe expression policy, and the guards every call goes through.

See docs/architecture.md for the design (the lookup by id, methods of built-in types judged by
the type and name they are bound to, verdicts cached per (type, name)).
"""

from __future__ import annotations

import datetime
import functools
import math
import time
import types
from collections.abc import Callable
from typing import Any, NamedTuple

from diagnose._safety.guarded import (
    _NOTHING,
    _bytes,
    _comb,
    _consuming,
    _dict,
    _dir,
    _enumerate,
    _expandtabs,
    _factorial,
    _join,
    _lcm,
    _perm,
    _prod,
    _range,
    _replace,
    _reversed,
    _safe_format,
    _str_format,
    _str_format_map,
    _str_translate,
    _sum,
    _type,
    _widening,
    _with_key,
    _zip,
)
from diagnose._safety.meter import keeping_meter
from diagnose._safety.operators import power
from diagnose.exceptions import ExpressionRefused

__all__ = ("CallGuards", "default_allowlist", "describe", "make_call_guards")


# --- the allowlist ----------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


_PURE_BUILTINS = (
    abs, ascii, bin, bool, callable, chr, complex, divmod, float, hash, hex, id, int,
    isinstance, issubclass, len, oct, ord, repr, round, slice, str,
)  # fmt: skip

_GUARDED_BUILTINS: dict[Any, Callable[..., Any]] = {
    all: _consuming(all),
    any: _consuming(any),
    list: _consuming(list),
    tuple: _consuming(tuple),
    set: _consuming(set),
    frozenset: _consuming(frozenset),
    dict: _dict,
    sum: _sum,
    range: _range,
    bytes: _bytes,
    type: _type,
    dir: _dir,
    enumerate: _enumerate,
    zip: _zip,
    reversed: _reversed,
    format: _safe_format,
    pow: power,
}

# Methods of built-in types that change nothing and call nothing they are given.
_PURE_METHODS: dict[type, str] = {
    str: """capitalize casefold count encode endswith find index isalnum isalpha isascii
        isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle
        isupper lower lstrip partition removeprefix removesuffix rfind rindex rpartition
        rsplit rstrip split splitlines startswith strip swapcase title upper""",
    bytes: """capitalize count decode endswith find hex index isalnum isalpha isascii
        isdigit islower isspace istitle isupper lower lstrip partition removeprefix
        removesuffix rfind rindex rpartition rsplit rstrip split splitlines startswith
        strip swapcase title translate upper""",
    int: "as_integer_ratio bit_count bit_length conjugate is_integer",
    float: "as_integer_ratio conjugate hex is_integer",
    complex: "conjugate",
    list: "copy count index",
    tuple: "count index",
    dict: "copy get items keys values",
    set: """copy difference intersection isdisjoint issubset issuperset
        symmetric_difference union""",
    frozenset: """copy difference intersection isdisjoint issubset issuperset
        symmetric_difference union""",
    type({}.keys()): "isdisjoint",
    type({}.items()): "isdisjoint",
    datetime.datetime: """astimezone combine ctime date dst fromisocalendar fromisoformat
        fromordinal fromtimestamp isocalendar isoformat isoweekday now replace strftime
        strptime time timestamp timetuple timetz today toordinal tzname utcoffset
        utctimetuple weekday""",
    datetime.date: """ctime fromisocalendar fromisoformat fromordinal fromtimestamp
        isocalendar isoformat isoweekday replace strftime timetuple today toordinal
        weekday""",
    datetime.time: "dst fromisoformat isoformat replace strftime tzname utcoffset",
    datetime.timedelta: "total_seconds",
    datetime.timezone: "dst tzname utcoffset",
}
# Deprecated since 3.12 but still pure: allowed, so that an old probe keeps working.
_PURE_METHODS[datetime.datetime] += " utcnow utcfromtimestamp"

_GUARDED_METHODS: dict[Any, Callable[..., Any]] = {
    str.format: _str_format,
    str.format_map: _str_format_map,
    str.translate: _str_translate,
}
for _kind in (str, bytes):
    for _name in ("center", "ljust", "rjust", "zfill"):
        _GUARDED_METHODS[getattr(_kind, _name)] = _widening(getattr(_kind, _name))
    _GUARDED_METHODS[_kind.expandtabs] = _expandtabs(_kind.expandtabs)
    _GUARDED_METHODS[_kind.replace] = _replace(_kind.replace)
    _GUARDED_METHODS[_kind.join] = _join(_kind.join)

_MODULE_FUNCTIONS = [
    getattr(time, name)
    for name in _words(
        """asctime ctime gmtime localtime mktime monotonic monotonic_ns perf_counter
        perf_counter_ns process_time process_time_ns strftime thread_time thread_time_ns
        time time_ns"""
    )
    if hasattr(time, name)
]
_MATH_GUARDED: dict[Any, Callable[..., Any]] = {
    math.factorial: _factorial,
    math.comb: _comb,
    math.perm: _perm,
    math.prod: _prod,
    math.lcm: _lcm,
}
_MODULE_FUNCTIONS += [
    value
    for name, value in vars(math).items()
    if not name.startswith("_") and callable(value) and value not in _MATH_GUARDED
]
_CONSTRUCTORS = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    str.maketrans,
    bytes.maketrans,
)


def _descriptor(kind: type, name: str) -> Any:
    """Return the attribute name of kind as stored along its MRO (no code runs)."""
    for klass in kind.__mro__:
        found = klass.__dict__.get(name, _NOTHING)
        if found is not _NOTHING:
            return found
    return None


Allowlist = dict[int, tuple[Any, Callable[..., Any]]]
_PURE: Any = object()
_BUILTIN_METHOD = types.BuiltinMethodType


def default_allowlist() -> Allowlist:
    """Return a new allowlist holding the default callables, without a call guard yet."""
    table: Allowlist = {}

    def put(obj: Any, impl: Callable[..., Any] | None = None) -> None:
        table[id(obj)] = (obj, obj if impl is None else impl)

    for obj in (*_PURE_BUILTINS, *_MODULE_FUNCTIONS, *_CONSTRUCTORS):
        put(obj)
    for obj, impl in (*_GUARDED_BUILTINS.items(), *_MATH_GUARDED.items()):
        put(obj, impl)
    for kind, names in _PURE_METHODS.items():
        for name in _words(names):
            descriptor = _descriptor(kind, name)
            if descriptor is not None:  # is_integer is new in 3.12
                put(descriptor)
    for descriptor, impl in _GUARDED_METHODS.items():
        put(descriptor, impl)
    return table


def _type_name(kind: type) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def describe(function: Any) -> str:
    """Name a callable for an error text, without running any of its code."""
    if isinstance(function, types.BuiltinFunctionType):
        owner = function.__self__
        if isinstance(owner, types.ModuleType):
            if owner.__name__ == "builtins":
                return function.__name__
            return f"{owner.__name__}.{function.__name__}"
        if owner is not None:
            kind = owner if isinstance(owner, type) else type(owner)
            return f"{_type_name(kind)}.{function.__name__}"
        return function.__qualname__
    if isinstance(function, type):
        return _type_name(function)
    if isinstance(function, types.FunctionType):
        return function.__qualname__
    if isinstance(function, types.MethodType):
        return f"{describe(function.__func__)} (a method)"
    if isinstance(function, types.MethodDescriptorType | types.ClassMethodDescriptorType):
        return f"{_type_name(function.__objclass__)}.{function.__name__}"
    return f"an object of type {type(function).__qualname__}"


class CallGuards(NamedTuple):
    """The call guards of one allowlist (see make_call_guards)."""

    call: Callable[..., Any]  # call(f, *args, **kwargs)
    by_arity: tuple[Callable[..., Any], ...]  # by_arity[n](f, a1, ..., an), n <= 3
    forget: Callable[[], None]


def make_call_guards(table: Allowlist) -> CallGuards:
    """Return the guards that call f(...) if the table allows f, else raise
    ExpressionRefused. ``call`` takes any arguments; ``by_arity[n]`` takes exactly n
    positional ones (a Python function without ``*args``/``**kwargs`` is called much
    faster, and most calls in an expression have no keywords). forget() drops the cached
    verdicts on methods (call it after changing the table). sorted/min/max in the table
    get key functions guarded by call."""
    # Verdicts on methods of instances: id(type) -> (type, {method name: verdict}), where
    # the verdict is _PURE (call the bound method as it is), a guard taking the instance
    # first, or None (refused). Methods bound to a class (classmethods) are kept apart,
    # by the class itself. Module functions are only ever allowed by id.
    instance_methods: dict[int, tuple[type, dict[str, Any]]] = {}
    class_methods: dict[tuple[int, str], tuple[type, Any]] = {}
    # (type, name) of the pure methods of instances seen so far: the fast path's one
    # lookup. Hashing a type runs no code but its metaclass's __hash__, which any
    # expression can run anyway ({type(x)}).
    pure: set[tuple[type, str]] = set()

    def verdict(kind: type, name: str) -> Any:
        descriptor = _descriptor(kind, name)
        entry = table.get(id(descriptor))
        if entry is None or entry[0] is not descriptor:
            return None
        return _PURE if entry[1] is descriptor else entry[1]

    def bound(function: Any) -> Any:
        """Return what to call for a bound builtin method, or None if it is refused."""
        owner = function.__self__
        name = function.__name__
        if isinstance(owner, type):
            key = (id(owner), name)
            cached = class_methods.get(key)
            if cached is None or cached[0] is not owner:
                cached = class_methods[key] = (owner, verdict(owner, name))
            found = cached[1]
        elif owner is None or isinstance(owner, types.ModuleType):
            return None
        else:
            kind = type(owner)
            per_type = instance_methods.get(id(kind))
            if per_type is None or per_type[0] is not kind:
                per_type = instance_methods[id(kind)] = (kind, {})
            found = per_type[1].get(name, _NOTHING)
            if found is _NOTHING:
                found = per_type[1][name] = verdict(kind, name)
                if found is _PURE:
                    pure.add((kind, name))
        if found is None:
            return None
        if found is _PURE:
            return function
        return functools.partial(found, owner)

    def slow(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        kind = type(function)
        if kind is types.BuiltinMethodType:
            target = bound(function)
            if target is not None:
                return target(*args, **kwargs)
        elif kind is types.MethodType:
            inner = function.__func__
            entry = table.get(id(inner))
            if entry is not None and entry[0] is inner:
                return keeping_meter(function)(*args, **kwargs)
        raise ExpressionRefused(
            f"refused at run time: call of {describe(function)} is not allowed in a safe expression"
        )

    def forget() -> None:
        instance_methods.clear()
        class_methods.clear()
        pure.clear()

    def call(function: Any, /, *args: Any, **kwargs: Any) -> Any:
        entry = table.get(id(function))
        if entry is not None and entry[0] is function:
            return entry[1](*args, **kwargs)
        return slow(function, args, kwargs)

    # The same, for 0 to 3 positional arguments, with the commonest case of the slow path
    # (a pure method of a builtin type's instance: kwargs.get(k), s.upper()) inlined.
    def call0(function: Any, /) -> Any:
        entry = table.get(id(function))
        if entry is not None and entry[0] is function:
            return entry[1]()
        if (
            type(function) is _BUILTIN_METHOD
            and (type(function.__self__), function.__name__) in pure
        ):
            return function()
        return slow(function, (), {})

    def call1(function: Any, a: Any, /) -> Any:
        entry = table.get(id(function))
        if entry is not None and entry[0] is function:
            return entry[1](a)
        if (
            type(function) is _BUILTIN_METHOD
            and (type(function.__self__), function.__name__) in pure
        ):
            return function(a)
        return slow(function, (a,), {})

    def call2(function: Any, a: Any, b: Any, /) -> Any:
        entry = table.get(id(function))
        if entry is not None and entry[0] is function:
            return entry[1](a, b)
        if (
            type(function) is _BUILTIN_METHOD
            and (type(function.__self__), function.__name__) in pure
        ):
            return function(a, b)
        return slow(function, (a, b), {})

    def call3(function: Any, a: Any, b: Any, c: Any, /) -> Any:
        entry = table.get(id(function))
        if entry is not None and entry[0] is function:
            return entry[1](a, b, c)
        return slow(function, (a, b, c), {})

    for kind, many in ((sorted, False), (min, True), (max, True)):
        table[id(kind)] = (kind, _with_key(kind, call, many))
    return CallGuards(call, (call0, call1, call2, call3), forget)
