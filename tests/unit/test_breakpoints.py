"""Breakpoints: detect, block and fail calls to a target from another thread."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator

import pytest

from diagnose.breakpoints import Breakpoint, do

MODULE = "bp_targets"


@pytest.fixture
def mod() -> Iterator[types.ModuleType]:
    """A small module of targets, importable by dotted path."""
    module = types.ModuleType(MODULE)
    exec(
        "def step(x):\n"
        "    return x + 1\n"
        "def run(x):\n"
        "    return step(x) * 2\n"
        "def broken(x):\n"
        "    raise ValueError(x)\n",
        module.__dict__,
    )
    sys.modules[MODULE] = module
    yield module
    del sys.modules[MODULE]


def test_breakpoint_records_calls_and_detaches(mod: types.ModuleType) -> None:
    """A Breakpoint records each call and puts the original code back on exit."""
    original = mod.step.__code__
    with Breakpoint(f"{MODULE}.step") as bp:
        assert mod.run(1) == 4
        assert mod.run(2) == 6
    assert bp.calls == [True, True]
    assert mod.step.__code__ is original


def test_breakpoint_not_hit_fails_the_block(mod: types.ModuleType) -> None:
    """Leaving the with-block without a hit raises AssertionError."""
    with pytest.raises(AssertionError, match="not met"), Breakpoint(f"{MODULE}.step"):
        pass


def test_blocking_breakpoint_holds_the_thread_until_released(mod: types.ModuleType) -> None:
    """do(...).until(target) holds the thread inside the target until the block ends."""
    reached = threading.Event()
    with do(mod.run, 5).until(f"{MODULE}.step") as t:
        reached.set()
        assert t.results == []
    assert reached.is_set()
    assert t.results == [12]


def test_erroring_breakpoint_raises_in_the_caller(mod: types.ModuleType) -> None:
    """Breakpoint.error raises the given exception in the calling thread."""
    with pytest.raises(KeyError), Breakpoint.error(KeyError("injected"), f"{MODULE}.step"):
        mod.run(1)
    assert mod.run(1) == 4


@pytest.mark.parametrize("condition, expected", [(1, [False, True]), ([0], [True, False])])
def test_numbered_condition_fires_on_that_call(
    mod: types.ModuleType, condition: object, expected: list[bool]
) -> None:
    """An int or list condition fires on those numbered calls only."""
    with Breakpoint(f"{MODULE}.step", condition=condition) as bp:
        mod.step(1)
        mod.step(2)
    assert bp.calls == expected


def test_callable_condition_and_return_event(mod: types.ModuleType) -> None:
    """A callable condition gets the target's arguments; event="return" fires after it."""
    with Breakpoint(f"{MODULE}.step", event="return", condition=lambda x: x > 1) as bp:
        mod.step(1)
        mod.step(3)
    assert bp.calls == [False, True]


def test_error_event_fires_when_the_target_raises(mod: types.ModuleType) -> None:
    """event="error" fires when the target raises; the exception still propagates."""
    with Breakpoint(f"{MODULE}.broken", event="error") as bp, pytest.raises(ValueError):
        mod.broken(3)
    assert bp.calls == [True]


def test_wait_times_out_with_runtime_error(mod: types.ModuleType) -> None:
    """wait() raises RuntimeError when the target is not hit in time."""
    with (
        pytest.raises(RuntimeError, match="not hit"),
        Breakpoint(f"{MODULE}.step", timeout=0.05) as bp,
    ):
        bp.wait()
