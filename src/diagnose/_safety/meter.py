"""The run-time meter of the safe expression policy: the limits of one evaluation (items
iterated, bytes built, time), and iteration that charges them.

Invariant: no safe evaluation iterates over LIMIT_ITEMS items, builds a value over
LIMIT_BYTES or EVAL_BYTES in all, or runs past EVAL_SECONDS once it loops; an iterator of
the target's is never consumed.
"""

from __future__ import annotations

import functools
import threading
import time
import types
from collections.abc import Callable
from itertools import chain, islice
from typing import Any, NoReturn

from diagnose.exceptions import ExpressionRefused

__all__ = (
    "EVAL_BYTES",
    "EVAL_SECONDS",
    "FRESH_METER",
    "GENEXPR_NAME",
    "LIMIT_BYTES",
    "LIMIT_INT_BITS",
    "LIMIT_ITEMS",
    "SIZED",
    "SMALL",
    "begin",
    "charge_bytes",
    "charge_items",
    "check_int_bits",
    "counted",
    "keeping_meter",
    "looped",
    "ours",
    "refuse",
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


def check_int_bits(bits: int, what: str) -> None:
    if bits > LIMIT_INT_BITS:
        refuse(f"{what} would make an integer of about {bits:,} bits (the limit is 2**17)")
    if bits > 8 * SMALL:
        charge_bytes(bits // 8, what)


# --- iteration --------------------------------------------------------------------------

SIZED = frozenset(
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


def ours(iterator: Any) -> Any:
    """Wrap a lazy iterator the guards built (enumerate, zip, reversed) in a generator that
    counted() knows as ours: the same objects from the target's namespace are refused,
    since iterating them would consume them."""
    yield from iterator


ours.__code__ = ours.__code__.replace(co_name=GENEXPR_NAME)


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
    if kind in SIZED:
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
    if kind in SIZED:
        length = len(iterable)
        meter[_ITEMS] -= length
        if meter[_ITEMS] < 0:
            refuse(f"iterates over more than {LIMIT_ITEMS:,} items")
        if length <= _SHORT:
            return iterable
        return chain.from_iterable(_chunks(iter(iterable), False))
    return chain.from_iterable(_chunks(_foreign(iterable), True))
