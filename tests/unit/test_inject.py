"""Building a wrapper around a code object, and hooks in a copy of a function's code."""

from __future__ import annotations

import inspect
import sys
import traceback
from typing import Any

import pytest

from diagnose._swap import codegen
from probe_targets import shop


def test_a_wrapper_keeps_the_targets_parameters_and_defaults() -> None:
    """An exact wrapper takes the target's own parameters; defaults come from the function."""
    s = codegen.Sections()
    s.after.append("_dgn_r = _dgn_r * 10")
    code = codegen.build_wrapper_code(
        shop.price.__code__, shop.price, s, label="probe_targets.shop.price"
    )
    wrapper = codegen.copy_function(shop.price, code)
    assert inspect.signature(wrapper) == inspect.signature(shop.price)
    assert wrapper(3) == 60 and wrapper(3, 1, discount=1) == 20
    assert code.co_name == "price" and code.co_filename == shop.price.__code__.co_filename


def test_a_raise_runs_the_error_lines_and_leaves_no_wrapper_frame() -> None:
    """A raise in the target runs the wrapper's error lines, and the traceback shows no wrapper
    frame."""
    seen: list[Any] = []
    s = codegen.Sections()
    s.on_error.append(f"{s.const('_dgn_seen', seen)}.append(type(_dgn_e).__name__)")
    code = codegen.build_wrapper_code(shop.fail.__code__, shop.fail, s)
    wrapper = codegen.copy_function(shop.fail, code)
    with pytest.raises(ValueError) as info:
        wrapper("x")
    assert seen == ["ValueError"]
    names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert names[-1] == "fail" and names.count("fail") == 1


def test_names_of_the_wrapper_are_refused_in_a_target() -> None:
    """A target that uses the wrapper's reserved names is refused with ValueError."""

    def clash(_dgn_r: int) -> int:
        return _dgn_r

    with pytest.raises(ValueError, match="_dgn_r"):
        codegen.build_wrapper_code(clash.__code__, clash, codegen.Sections())


def test_code_lines_are_the_lines_with_code_but_the_def() -> None:
    """code_lines gives the lines of a function that hold code, without its def line."""
    first = shop.price.__code__.co_firstlineno
    assert codegen.code_lines(shop.price.__code__) == {first + 1, first + 2}


def test_hooks_run_in_a_frame_whose_caller_is_the_target() -> None:
    """Line and return hooks run in a frame whose caller is the target, seeing its locals."""
    calls: list[tuple[str, Any]] = []

    def on_line() -> None:
        calls.append(("line", dict(sys._getframe(1).f_locals)))

    def on_return() -> None:
        calls.append(("return", sys._getframe(1).f_locals.get("subtotal")))

    first = shop.price.__code__.co_firstlineno
    code = codegen.with_hooks(shop.price.__code__, on_return, {first + 2: on_line})
    hooked = codegen.copy_function(shop.price, code)
    assert hooked(2) == 4
    assert calls == [
        ("line", {"amount": 2, "rate": 2, "discount": 0, "subtotal": 4}),
        ("return", 4),
    ]
    assert shop.price.__code__ is not code  # a copy: the original is untouched
