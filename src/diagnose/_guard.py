"""The run-time half of the safe expression policy: the meter, iteration and operators.

Three modules share it: this one (limits, the per-evaluation meter, iteration and the
operators that can build a huge value), ``_guarded`` (guarded replacements of callables:
formatting, str methods, builtins) and ``_allowlist`` (the allowlist and the guard every
call goes through).

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

import array
import collections
import functools
import operator
import re
import threading
import time
import types
from collections.abc import Callable
from fractions import Fraction
from itertools import chain, islice
from typing import Any, NoReturn

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
    "counted",
    "keeping_meter",
    "looped",
    "lshift",
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
