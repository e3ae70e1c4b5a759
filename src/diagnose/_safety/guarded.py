"""Guarded replacements for the allowed callables that could build a huge value or call
something themselves: formatting (``format_value``, ``str.format``), the methods of str
and bytes that widen or join, and builtins such as ``range``, ``sum``, ``sorted(key=)``.

Each charges the evaluation's meter (``meter``) before it builds anything; the
allowlist (``allowlist``) maps the original callables to these.
"""

from __future__ import annotations

import _string
import math
import operator
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from diagnose._output.redaction import REDACTED, is_secret
from diagnose._safety.meter import (  # the meter and limits this module charges
    LIMIT_ITEMS,
    SIZED,
    SMALL,
    charge_bytes,
    charge_items,
    check_int_bits,
    counted,
    looped,
    ours,
    refuse,
)
from diagnose._safety.operators import mul

__all__ = ("check_spec", "format_value")


# --- formatting -------------------------------------------------------------------------

_DIGITS = re.compile(r"\d+")


def check_spec(spec: Any) -> None:
    """Refuse a format spec (the part after ':') whose width or precision is huge."""
    if type(spec) is not str or not spec:
        return
    total = 0
    for number in _DIGITS.findall(spec):
        if len(number) > 9:
            refuse(f"a format width of {len(number)} digits")
        total += int(number)
    if total > SMALL:
        charge_bytes(total, "a format width or precision")


_CONVERSIONS: dict[int, Callable[[Any], str]] = {ord("s"): str, ord("r"): repr, ord("a"): ascii}


def format_value(value: Any, conversion: int, spec: str) -> str:
    """What an f-string's ``{value!conversion:spec}`` gives, after checking spec."""
    convert = _CONVERSIONS.get(conversion)
    if convert is not None:
        value = convert(value)
    check_spec(spec)
    return format(value, spec)


def _safe_format(value: Any, spec: str = "") -> str:
    check_spec(spec)
    return format(value, spec)


class _SafeFormatter(string.Formatter):
    """str.format and str.format_map, without attribute reads (``{0.__class__}``), with
    every width checked (nested ones too: ``{0:{1}}``), and a field whose name or key is
    a secret name (``{password}``, ``{0[token]}``) shown as <redacted>, never read."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        first, rest = _string.formatter_field_name_split(field_name)
        if is_secret(first):
            return REDACTED, first
        value = self.get_value(first, args, kwargs)
        for is_attribute, key in rest:
            if is_attribute:
                refuse(f"the format field {{{field_name}}} reads an attribute")
            if is_secret(key):
                return REDACTED, first
            value = value[key]
        return value, first

    def format_field(self, value: Any, format_spec: str) -> Any:
        check_spec(format_spec)
        return format(value, format_spec)


_formatter = _SafeFormatter()


def _str_format(self: str, *args: Any, **kwargs: Any) -> str:
    return _formatter.vformat(str(self), args, kwargs)


def _str_format_map(self: str, mapping: Any) -> str:
    return _formatter.vformat(str(self), (), mapping)


# --- guarded methods of str and bytes ---------------------------------------------------


def _widening(method: Any) -> Callable[..., Any]:
    """A guard for center/ljust/rjust/zfill: the result is as wide as the width asked."""

    def guard(self: Any, width: Any, *args: Any) -> Any:
        size = operator.index(width)
        if size > SMALL:
            charge_bytes(size, f"{method.__qualname__}()")
        return method(self, width, *args)

    return guard


def _expandtabs(method: Any) -> Callable[..., Any]:
    def guard(self: Any, tabsize: Any = 8) -> Any:
        tab = "\t" if isinstance(self, str) else b"\t"
        size = len(self) + self.count(tab) * max(operator.index(tabsize), 0)
        if size > SMALL:
            charge_bytes(size, f"{method.__qualname__}()")
        return method(self, tabsize)

    return guard


def _replace(method: Any) -> Callable[..., Any]:
    def guard(self: Any, old: Any, new: Any, count: Any = -1) -> Any:
        if len(new) > len(old):
            found = self.count(old) if old else len(self) + 1
            limit = operator.index(count)
            if limit >= 0:
                found = min(found, limit)
            size = len(self) + found * (len(new) - len(old))
            if size > SMALL:
                charge_bytes(size, f"{method.__qualname__}()")
        return method(self, old, new, count)

    return guard


def _join(method: Any) -> Callable[..., Any]:
    def guard(self: Any, iterable: Any) -> Any:
        items = list(counted(iterable))
        try:
            size = sum(map(len, items)) + len(self) * max(len(items) - 1, 0)
        except TypeError:
            size = 0  # join raises the proper error
        if size > SMALL:
            charge_bytes(size, f"{method.__qualname__}()")
        return method(self, items)

    return guard


def _str_translate(self: str, table: Any) -> str:
    if not isinstance(table, dict):
        refuse("str.translate() with a table that is not a dict")
    longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
    size = len(self) * longest
    if size > SMALL:
        charge_bytes(size, "str.translate()")
    return str.translate(self, table)


# --- guarded builtins -------------------------------------------------------------------

_NOTHING: Any = object()


def _consuming(kind: Any) -> Callable[..., Any]:
    def guard(iterable: Any = _NOTHING, /) -> Any:
        if iterable is _NOTHING:
            return kind()
        return kind(counted(iterable))

    guard.__qualname__ = kind.__qualname__
    return guard


def _dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    if args and not isinstance(args[0], Mapping):
        args = (counted(args[0]), *args[1:])
    elif args and type(args[0]) in SIZED:
        charge_items(len(args[0]))
    return dict(*args, **kwargs)


def _sum(iterable: Any, /, start: Any = 0) -> Any:
    if not isinstance(start, int | float | complex):
        refuse("sum() with a start that is not a number (join lists with a comprehension)")
    return sum(counted(iterable), start)


def _range(*args: Any) -> range:
    result = range(*args)
    try:
        length = len(result)
    except OverflowError:
        length = LIMIT_ITEMS + 1
    if length > LIMIT_ITEMS:
        refuse(f"range() of {result.start}..{result.stop} has over {LIMIT_ITEMS:,} items")
    return result


def _bytes(*args: Any, **kwargs: Any) -> bytes:
    if len(args) == 1 and not kwargs:
        source = args[0]
        if not isinstance(source, str | bytes | bytearray | memoryview):
            if hasattr(type(source), "__index__"):
                size = operator.index(source)
                if size > SMALL:
                    charge_bytes(size, "bytes()")
            else:
                return bytes(counted(source))
    return bytes(*args, **kwargs)


def _type(obj: Any, /, *more: Any) -> type:
    if more:
        refuse("type() with other than one argument")
    return type(obj)


def _dir(*args: Any) -> list[str]:
    if len(args) != 1:
        refuse("dir() with other than one argument")
    return dir(args[0])


def _enumerate(iterable: Any, start: int = 0) -> Any:
    return ours(enumerate(counted(iterable), start))


def _zip(*iterables: Any, strict: bool = False) -> Any:
    return ours(zip(*(counted(i) for i in iterables), strict=strict))


def _reversed(sequence: Any) -> Any:
    if type(sequence) in SIZED:
        charge_items(len(sequence))
    return ours(reversed(sequence))


def _factorial(n: Any) -> int:
    if operator.index(n) > 10_000:
        refuse("math.factorial() of more than 10,000")
    return math.factorial(n)


def _comb(n: Any, k: Any) -> int:
    if operator.index(n) > 10_000:
        refuse("math.comb() of more than 10,000")
    return math.comb(n, k)


def _perm(n: Any, k: Any = None) -> int:
    if operator.index(n) > 10_000:
        refuse("math.perm() of more than 10,000")
    return math.perm(n, k)


def _prod(iterable: Any, /, *, start: Any = 1) -> Any:
    result = start
    for item in looped(iterable):
        result = mul(result, item)
    return result


def _lcm(*integers: Any) -> int:
    bits = sum(operator.index(i).bit_length() for i in integers)
    check_int_bits(bits, "math.lcm()")
    return math.lcm(*integers)


def _with_key(kind: Any, call: Callable[..., Any], many: bool) -> Callable[..., Any]:
    """sorted/min/max: the items are counted and the key function is itself guarded."""

    def guard(*args: Any, key: Any = None, **kwargs: Any) -> Any:
        if key is not None:
            key_function = key

            def key(item: Any) -> Any:
                return call(key_function, item)

        if len(args) == 1 or not many:
            args = (counted(args[0]), *args[1:]) if args else args
        return kind(*args, key=key, **kwargs)

    guard.__qualname__ = kind.__qualname__
    return guard
