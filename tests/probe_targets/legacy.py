"""Targets shaped like the original diagnose library's own test fixtures."""

from __future__ import annotations

import functools
from typing import Any


def plus_thirteen(arg: Any) -> Any:
    extra = 13
    output = arg + extra
    return output


def count_tens(lower: int, upper: int) -> int:
    numbers = range(lower, upper)
    tens = len([n for n in numbers if n % 10 == 0])
    return tens


def shift_first_arg(f: Any) -> Any:
    """A decorator that calls f with its first argument plus 100."""

    @functools.wraps(f)
    def inner(self: Any, arg1: int) -> Any:
        return f(self, arg1 + 100)

    return inner


class Widget:
    def __init__(self, template: str = "<%s>") -> None:
        self.template = template

    def render(self, arg: Any, user_id: Any = None) -> str:
        return self.template % (arg,)

    @shift_first_arg
    def add5(self, arg1: int) -> int:
        return arg1 + 5


class PassThrough:
    """A class-based decorator that wraps with functools.wraps."""

    def __call__(self, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return wrapper


@PassThrough()
def total4(arg1: int, arg2: int, arg3: int, arg4: int) -> int:
    return arg1 + arg2 + arg3 + arg4
