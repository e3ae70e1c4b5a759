"""Targets of every kind diagnose can probe, each computing ``amount * rate - discount``.

Tests rely on the line numbers of the lines marked ``# raise here`` and ``# slow line``
only through their source text, so this file may be edited freely.
"""

from __future__ import annotations

import asyncio
import functools

RATE = 2


def price(amount, rate=RATE, *, discount=0):
    subtotal = amount * rate
    return subtotal - discount


def add(a, b):
    return a + b


def fail(message, *, code=1):
    detail = f"bad {message} ({code})"
    raise ValueError(detail)  # raise here


def factorial(n):
    if n <= 1:
        return 1
    return n * factorial(n - 1)


def fail_deep(n):
    if n <= 0:
        raise KeyError("bottom")  # raise here
    return fail_deep(n - 1)


def gather(first, /, second=10, *more, scale=1, **options):
    subtotal = (first + second + sum(more)) * scale
    return subtotal, sorted(options)


def slow(n):
    total = 0
    for _ in range(n):
        total += sum(range(200_000))  # slow line
    return total


class Base:
    def describe(self):
        return "base"


class Cart(Base):
    """A cart; its methods of every kind compute the same price."""

    def __init__(self, label="cart"):
        self.label = label

    def total(self, amount, rate=RATE, *, discount=0):
        subtotal = amount * rate
        return subtotal - discount

    @staticmethod
    def scale(amount, rate=RATE, *, discount=0):
        subtotal = amount * rate
        return subtotal - discount

    @classmethod
    def build(cls, amount, rate=RATE, *, discount=0):
        subtotal = amount * rate
        return subtotal - discount

    @property
    def size(self):
        subtotal = len(self.label) * RATE
        return subtotal - 1

    def describe(self):
        return "cart of " + super().describe()


CART = Cart()


def logged(fn):
    """Decorate fn the usual way, with functools.wraps."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@logged
def wrapped_price(amount, rate=RATE, *, discount=0):
    subtotal = amount * rate
    return subtotal - discount


async def fetch_price(amount, rate=RATE, *, discount=0):
    await asyncio.sleep(0.02)
    subtotal = amount * rate
    return subtotal - discount


def countdown(amount, rate=RATE, *, discount=0):
    subtotal = amount * rate
    for step in range(3):  # noqa: UP028 (the loop variable is a local the tests read)
        yield step
    return subtotal - discount


async def acountdown(amount, rate=RATE, *, discount=0):
    subtotal = amount * rate  # noqa: F841 (a local the tests read)
    for step in range(3):
        await asyncio.sleep(0)
        yield step


def echo():
    """A generator that sends back what it is sent, and reports what is thrown in."""
    received = None
    while True:
        try:
            received = yield received
        except KeyError as exc:
            received = f"caught {exc.args[0]}"


def add_when_told(entered, go, x):
    """Set entered, wait for go, then return x + 1."""
    entered.set()
    go.wait(10)
    return x + 1


async def aecho():
    """An async generator that sends back what it is sent, and reports what is thrown in."""
    received = None
    while True:
        try:
            received = yield received
        except KeyError as exc:
            received = f"caught {exc.args[0]}"


def tally(items):
    total = 0
    for item in items:
        total += item  # tally line
    return total


def wind_down(n):
    while n > 0:
        n -= 1  # wind-down line
    return n


def evens(items):
    for item in items:
        try:
            if item % 2 == 0:
                yield item  # evens line
        except GeneratorExit:
            raise
