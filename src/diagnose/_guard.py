"""The run-time half of the safe expression policy: the allowlist and the guards.

``_policy`` rewrites a safe expression so that what can only be judged when it runs goes
through a function of this module: every call (the guards of ``make_call_guards``), the
operators that can build a huge value (``mul``, ``power``, ``lshift``, ``add``, ``mod``),
every iteration (``looped`` for a comprehension, ``counted`` for ``*x``), ``x in y``
(``contains``) and format specs (``format_value``).

**Calls.** The allowlist maps ``id(callable)`` to ``(callable, implementation)``: a pure
builtin is its own implementation; one that could build a huge value or call something
itself (``sorted(key=...)``, ``str.ljust``, ``range``, ``str.format``) has a guarded
replacement. The lookup is by id, never by hash or equality, so that no code of the
callee's runs before it is allowed. A method of a built-in type is a new bound object
at each access (``d.get``), so it is judged by the object it is bound to and its name:
the name of a C method is fixed by its C definition, so ``type(d)``'s attribute of that
name is found along the MRO (without running any code) and must be an allowlisted
descriptor. A subclass overriding ``get`` in Python gives a bound *Python* method, which
is refused unless ``allow()`` let its function in; ``MyDict.get = dict.pop`` still gives
a method called ``pop``. Verdicts on methods are cached per (type, name).

**Limits.** No value over ``LIMIT_BYTES`` (1 MiB), no more than ``LIMIT_ITEMS`` (10^6)
items iterated and no more than ``EVAL_BYTES`` (8 MiB) built in one evaluation, no int
over ``LIMIT_INT_BITS`` (2^17 bits, about 39,000 digits). Sizes are predicted before the
operation runs (``'x' * 10**9`` is refused without allocating). The per-evaluation counts
live in a thread-local meter that the expression sets with ``begin(meter)`` as it starts.
Iterating a builtin container charges its length at once, and a consumer written in C
(``list()``, ``sorted()``, ``sum()``, ``*x``) then iterates it as it is. What is not a
builtin container, and a container of more than 64 items that a comprehension loops
over, is read in chunks of 4 to 4096 items through ``itertools`` (a few ns an item).
The evaluation stops once ``EVAL_SECONDS`` (25 ms) have passed since its first loop or
big value began, checked at each loop, chunk and big value: that bounds a loop whose body
is slow (``[s.count('a') for _ in range(10**6)]``), which no count of items or bytes
would. An iterator that belongs to the target (a generator, a file) is refused:
iterating it would consume it.

What this does not stop: code of the target's that Python runs implicitly (a property,
``__getattr__``, ``__eq__``, ``__str__``, ``__format__``, ``keys()`` for ``dict(obj)``, a
``defaultdict``'s factory on a missing key). That code is the application's own; the
policy stops what the expression writer could do beyond it. Nor does it bound one
operation on data the target already holds (``huge_list.count(x)``, ``str(huge_dict)``).
"""

from __future__ import annotations

import _string
import array
import collections
import datetime
import functools
import math
import operator
import re
import string
import threading
import time
import types
from collections.abc import Callable, Mapping
from fractions import Fraction
from itertools import chain, islice
from typing import Any, NamedTuple, NoReturn

from ._redact import REDACTED, is_secret
from .exceptions import ExpressionRefused

__all__ = (
    "EVAL_BYTES",
    "FRESH_METER",
    "GENEXPR_NAME",
    "LIMIT_BYTES",
    "LIMIT_INT_BITS",
    "LIMIT_ITEMS",
    "add",
    "begin",
    "contains",
    "check_percent",
    "check_spec",
    "counted",
    "default_allowlist",
    "describe",
    "format_value",
    "keeping_meter",
    "looped",
    "lshift",
    "CallGuards",
    "make_call_guards",
    "mod",
    "mul",
    "power",
)

LIMIT_BYTES = 1 << 20
LIMIT_ITEMS = 10**6
LIMIT_INT_BITS = 1 << 17
EVAL_BYTES = 8 << 20
# An iteration stops once an evaluation has run this long (checked between chunks).
EVAL_SECONDS = 0.025
_SHORT = 64  # a container this short is iterated as it is, at C speed
_clock = time.perf_counter
SMALL = 4096  # sizes up to this are not worth charging
# The co_name _policy gives the generator expressions it compiles: counted() iterates
# those, and refuses any other generator (the target's own).
GENEXPR_NAME = "<safe genexpr>"


def refuse(reason: str) -> NoReturn:
    raise ExpressionRefused(f"refused at run time: {reason}")


# --- the meter --------------------------------------------------------------------------


_local = threading.local()

# A meter is a list: [items left, bytes left, deadline (0.0 until the first iteration
# starts the clock)]. Every guarded evaluation starts with begin(fresh_meter()) (the
# expression builds the list itself: a list display of constants), which must be cheap:
# it is a C-level call that sets this thread's meter.
begin = functools.partial(setattr, _local, "meter")
_ITEMS, _SIZE, _DEADLINE = 0, 1, 2
FRESH_METER = (LIMIT_ITEMS, EVAL_BYTES, 0.0)


def _timeout() -> NoReturn:
    refuse(f"the evaluation took over {EVAL_SECONDS * 1000:.0f} ms")


def _current() -> list[Any]:
    meter: list[Any] | None = getattr(_local, "meter", None)
    if meter is None:
        meter = _local.meter = [LIMIT_ITEMS, EVAL_BYTES, 0.0]
    return meter


def keeping_meter(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a callable that allow() let in: it is the application's code, which may be
    probed itself, and a probe's evaluation inside it sets this thread's meter; the
    caller's meter is put back when it returns, so its budgets go on where they were."""

    def call(*args: Any, **kwargs: Any) -> Any:
        saved = getattr(_local, "meter", None)
        try:
            return function(*args, **kwargs)
        finally:
            _local.meter = saved

    return call


def charge_items(count: int) -> None:
    meter = getattr(_local, "meter", None)
    if meter is None:
        meter = _local.meter = [LIMIT_ITEMS, EVAL_BYTES, 0.0]
    meter[_ITEMS] -= count
    if meter[_ITEMS] < 0:
        refuse(f"iterates over more than {LIMIT_ITEMS:,} items")


def charge_bytes(size: int, what: str) -> None:
    """Refuse a value over LIMIT_BYTES, charge it to the evaluation, and (a big value takes
    time to build) check the evaluation's clock."""
    if size > LIMIT_BYTES:
        refuse(f"{what} would build a value of {size:,} bytes (the limit is 1 MiB)")
    meter = _current()
    meter[_SIZE] -= size
    if meter[_SIZE] < 0:
        refuse(f"builds more than {EVAL_BYTES:,} bytes in one evaluation")
    now = _clock()
    if not meter[_DEADLINE]:
        meter[_DEADLINE] = now + EVAL_SECONDS
    elif now > meter[_DEADLINE]:
        _timeout()


def _check_int_bits(bits: int, what: str) -> None:
    if bits > LIMIT_INT_BITS:
        refuse(f"{what} would make an integer of about {bits:,} bits (the limit is 2**17)")
    if bits > 8 * SMALL:
        charge_bytes(bits // 8, what)


# --- iteration --------------------------------------------------------------------------

_SIZED = frozenset(
    {
        list,
        tuple,
        dict,
        set,
        frozenset,
        str,
        bytes,
        bytearray,
        range,
        type({}.keys()),
        type({}.values()),
        type({}.items()),
    }
)


def _ours(iterator: Any) -> Any:
    """Wrap a lazy iterator the guards built (enumerate, zip, reversed) in a generator that
    counted() knows as ours: the same objects from the target's namespace are refused,
    since iterating them would consume them."""
    yield from iterator


_ours.__code__ = _ours.__code__.replace(co_name=GENEXPR_NAME)


def _chunks(iterator: Any, charge: bool) -> Any:
    """Yield the items of iterator in tuples, charging them and watching the clock.

    A chunk grows from 4 to 4096 items while a chunk (its read, and the loop body over
    it) takes under a millisecond, and shrinks when it takes longer, so that a slow loop
    body is stopped soon after its evaluation's deadline."""
    size = 4
    meter = _current()
    if not meter[_DEADLINE]:
        meter[_DEADLINE] = _clock() + EVAL_SECONDS
    while True:
        started = _clock()
        chunk = tuple(islice(iterator, size))
        if not chunk:
            return
        if charge:
            charge_items(len(chunk))
        if _clock() > meter[_DEADLINE]:
            _timeout()
        yield chunk
        if len(chunk) < size:
            return
        fast = _clock() - started < 0.001
        size = min(size * 2, 4096) if fast else max(size // 4, 1)


def _foreign(iterable: Any) -> Any:
    """Return an iterator over iterable, refusing one that iterating would consume."""
    if type(iterable) is types.GeneratorType:
        if iterable.gi_code.co_name != GENEXPR_NAME:
            refuse("iterating a generator of the target's would consume it")
        return iterable
    iterator = iter(iterable)
    if iterator is iterable:
        kind = type(iterable).__name__
        refuse(f"iterating an iterator of the target's ({kind}) would consume it")
    return iterator


def counted(iterable: Any) -> Any:
    """Return iterable, or an iterator over its items, charged to the evaluation's meter:
    for a consumer that iterates in C (list(), sorted(), sum(), ``*iterable``...)."""
    kind = type(iterable)
    if kind in _SIZED:
        charge_items(len(iterable))
        return iterable
    return chain.from_iterable(_chunks(_foreign(iterable), True))


def looped(iterable: Any) -> Any:
    """Like counted(), for a comprehension's iterable: its body is Python code and may be
    slow, so the clock is read here (it starts at the evaluation's first loop), and any
    container of more than 64 items is read in chunks, the clock read between them."""
    meter = getattr(_local, "meter", None) or _current()
    now = _clock()
    deadline = meter[_DEADLINE]
    if not deadline:
        meter[_DEADLINE] = now + EVAL_SECONDS
    elif now > deadline:
        _timeout()
    kind = type(iterable)
    if kind in _SIZED:
        length = len(iterable)
        meter[_ITEMS] -= length
        if meter[_ITEMS] < 0:
            refuse(f"iterates over more than {LIMIT_ITEMS:,} items")
        if length <= _SHORT:
            return iterable
        return chain.from_iterable(_chunks(iter(iterable), False))
    return chain.from_iterable(_chunks(_foreign(iterable), True))


# --- operators --------------------------------------------------------------------------


def contains(item: Any, container: Any) -> bool:
    """item in container, refused when it would consume an iterator of the target's; an
    object without __contains__ is searched through counted() (it may be endless)."""
    kind = type(container)
    if kind in _SIZED or hasattr(kind, "__contains__"):
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
        _check_int_bits(a.bit_length() + b.bit_length(), "*")
        return a * b
    if isinstance(a, _SEQUENCES):
        seq, other = a, b
    elif isinstance(b, _SEQUENCES):
        seq, other = b, a
    else:
        if isinstance(a, int) and isinstance(b, int):
            _check_int_bits(a.bit_length() + b.bit_length(), "*")
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
            _check_int_bits(int_power_bits(a, b), "**")
        elif isinstance(a, Fraction):
            bits = int_power_bits(a.numerator, abs(b)) + int_power_bits(a.denominator, abs(b))
            _check_int_bits(bits, "**")
        return a**b
    if modulo is None:
        return a**b
    return pow(a, b, modulo)


def lshift(a: Any, b: Any) -> Any:
    """a << b, refused when it would make a huge int."""
    if isinstance(a, int) and isinstance(b, int) and b > 0:
        _check_int_bits(a.bit_length() + b, "<<")
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
    elif args and type(args[0]) in _SIZED:
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
    return _ours(enumerate(counted(iterable), start))


def _zip(*iterables: Any, strict: bool = False) -> Any:
    return _ours(zip(*(counted(i) for i in iterables), strict=strict))


def _reversed(sequence: Any) -> Any:
    if type(sequence) in _SIZED:
        charge_items(len(sequence))
    return _ours(reversed(sequence))


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
    _check_int_bits(bits, "math.lcm()")
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
