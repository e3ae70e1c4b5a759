"""The operators a safe expression runs through guards: those that can build a huge value
(``*``, ``**``, ``<<``, ``+``, ``%``) have its size predicted and charged before it is
built, and ``in`` never consumes an iterator of the target's."""

from __future__ import annotations

import array
import collections
import operator
import re
from fractions import Fraction
from typing import Any

from diagnose._output.redaction import REDACTED, is_secret
from diagnose._safety.meter import (
    SIZED,
    SMALL,
    charge_bytes,
    check_int_bits,
    counted,
    refuse,
)

__all__ = ("add", "check_percent", "contains", "int_power_bits", "lshift", "mod", "mul", "power")


def contains(item: Any, container: Any) -> bool:
    """item in container, refused when it would consume an iterator of the target's; an
    object without __contains__ is searched through counted() (it may be endless)."""
    kind = type(container)
    if kind in SIZED or hasattr(kind, "__contains__"):
        return item in container
    return any(x is item or x == item for x in counted(container))


_SEQUENCES = (str, bytes, bytearray, list, tuple, collections.deque, array.array)


def _seq_bytes(seq: Any, count: int) -> int:
    if isinstance(seq, str | bytes | bytearray):
        per = 1
    elif isinstance(seq, array.array):
        per = seq.itemsize
    else:
        per = 8
    return len(seq) * max(count, 0) * per


def mul(a: Any, b: Any) -> Any:
    """a * b, refused when it would repeat a sequence into a huge one or make a huge int."""
    ta = type(a)
    tb = type(b)
    if ta is float or tb is float:
        return a * b
    if ta is int and tb is int:
        check_int_bits(a.bit_length() + b.bit_length(), "*")
        return a * b
    if isinstance(a, _SEQUENCES):
        seq, other = a, b
    elif isinstance(b, _SEQUENCES):
        seq, other = b, a
    else:
        if isinstance(a, int) and isinstance(b, int):
            check_int_bits(a.bit_length() + b.bit_length(), "*")
        return a * b
    try:
        count = operator.index(other)
    except TypeError:
        return a * b
    size = _seq_bytes(seq, count)
    if size > SMALL:
        charge_bytes(size, "*")
    return a * b


def add(a: Any, b: Any) -> Any:
    """a + b, refused when it would join sequences into a huge one."""
    ta = type(a)
    if (ta is int or ta is float) and type(b) in (int, float):
        return a + b
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        size = _seq_bytes(a, 1) + _seq_bytes(b, 1)
        if size > SMALL:
            charge_bytes(size, "+")
    return a + b


def int_power_bits(base: int, exponent: int) -> int:
    if exponent <= 0 or base in (0, 1, -1):
        return 1
    return (abs(base).bit_length() - 1) * exponent + 1


def power(a: Any, b: Any, modulo: Any = None) -> Any:
    """a ** b (pow(a, b, modulo)), refused when it would make a huge int or fraction."""
    if modulo is None and isinstance(b, int):
        if isinstance(a, int):
            check_int_bits(int_power_bits(a, b), "**")
        elif isinstance(a, Fraction):
            bits = int_power_bits(a.numerator, abs(b)) + int_power_bits(a.denominator, abs(b))
            check_int_bits(bits, "**")
        return a**b
    if modulo is None:
        return a**b
    return pow(a, b, modulo)


def lshift(a: Any, b: Any) -> Any:
    """a << b, refused when it would make a huge int."""
    if isinstance(a, int) and isinstance(b, int) and b > 0:
        check_int_bits(a.bit_length() + b, "<<")
    return a << b


_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)


def check_percent(fmt: str, args: Any) -> None:
    """Refuse a %-format whose widths or precisions (given or from '*') are huge."""
    positional = args if type(args) is tuple else (args,)
    index = 0
    total = 0
    for match in _PERCENT.finditer(fmt):
        width, precision, kind = match.groups()
        if kind == "%" and width is None and precision is None:
            continue
        for number in (width, precision):
            if number is None:
                continue
            if number == "*":
                value = positional[index] if index < len(positional) else 0
                index += 1
                number_value = value if isinstance(value, int) else 0
            else:
                if len(number) > 9:
                    refuse(f"a %-format width of {len(number)} digits")
                number_value = int(number)
            total += abs(number_value)
        index += 1
    if total > SMALL:
        charge_bytes(total, "a %-format width or precision")


class _Redacting:
    """The mapping a %-format reads its %(name)s values from, with secret names hidden."""

    __slots__ = ("mapping",)

    def __init__(self, mapping: Any) -> None:
        self.mapping = mapping

    def __getitem__(self, key: Any) -> Any:
        return REDACTED if is_secret(key) else self.mapping[key]


_PERCENT_KEY = re.compile(r"%\(([^)]*)\)")


def mod(a: Any, b: Any) -> Any:
    """a % b, refused when a is a %-format with huge widths or precisions; a %(name)s
    whose name is a secret name shows <redacted>."""
    ta = type(a)
    if ta is int or ta is float:
        return a % b
    if isinstance(a, str):
        check_percent(a, b)
        named = "%(" in a and type(b) is not tuple
        if named and any(is_secret(key) for key in _PERCENT_KEY.findall(a)):
            b = _Redacting(b)
    elif isinstance(a, bytes | bytearray):
        check_percent(bytes(a).decode("latin-1"), b)
    return a % b
