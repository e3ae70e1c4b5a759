"""Breakpoints used as the original diagnose library's users use them (its 3.x to 5.0.1 API).

The targets live in this module, as in the original's own tests, so that each can be
named by dotted path, by (object, "name") pair, or by the function or method itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import os
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from diagnose.breakpoints import Breakpoint, do

HERE = sys.modules[__name__]
posix_rename = os.rename
factorial = math.factorial


def square_of_x(x: int) -> int:
    return x * x


def square_of_x_plus_1(x: int) -> int:
    return square_of_x(x + 1)


def bump(f: Any) -> Any:
    """A decorator, as users write them: the inner function is what gets the breakpoint."""

    @functools.wraps(f)
    def inner(self: Any, n: int) -> Any:
        return f(self, n + 100)

    return inner


class Thing:
    stage: Any = None
    getter_calls = 0

    def advance_stage(self, to: str) -> None:
        self.stage = to

    def advance_multiple(self) -> None:
        for stage in ("alpha", "beta", "gamma", "delta"):
            self.advance_stage(to=stage)

    @bump
    def add5(self, n: int) -> int:
        return n + 5

    @staticmethod
    def static(n: int) -> int:
        return n * 2

    @classmethod
    def klass(cls, n: int) -> int:
        return n * 3

    @property
    def exists(self) -> bool:
        Thing.getter_calls += 1
        return True


class Man:
    def __init__(self) -> None:
        self.mints: Any = 0

    def add_mint(self) -> None:
        self.mints += 1

    def add_mints(self, num: int) -> None:
        for _ in range(num):
            self.add_mint()


@pytest.fixture
def thread_errors() -> Iterator[list[BaseException]]:
    """Collect what threads raise (the original's do() re-raises in its thread)."""
    caught: list[BaseException] = []
    previous = threading.excepthook

    def hook(args: Any) -> None:
        caught.append(args.exc_value)

    threading.excepthook = hook
    try:
        yield caught
    finally:
        threading.excepthook = previous


# --- item 5: every form of target names the same function ------------------------------

THING = f"{__name__}.Thing"

TARGET_FORMS = {
    "dotted path": lambda: f"{THING}.advance_stage",
    "(class, name)": lambda: (Thing, "advance_stage"),
    "unbound method": lambda: Thing.advance_stage,
    "bound method": lambda: Thing().advance_stage,
}


@pytest.mark.parametrize("form", list(TARGET_FORMS))
def test_each_target_form_breaks_on_every_call_of_the_function(form: str) -> None:
    """A function, a method bound to some instance, a pair or a path: one function."""
    original = Thing.advance_stage.__code__
    with Breakpoint(TARGET_FORMS[form](), condition=lambda self, to: to == "gamma") as bp:
        Thing().advance_multiple()
    assert bp.calls == [False, False, True, False]
    assert Thing.advance_stage.__code__ is original


def test_instance_pair_breaks_on_the_calls_through_that_instance_only() -> None:
    """(instance, "method"): the original patched that object, so other instances pass."""
    mine, other = Thing(), Thing()
    with Breakpoint((mine, "advance_stage")) as bp:
        other.advance_multiple()
        assert bp.calls == []
        mine.advance_stage("x")
        Thing.advance_stage(mine, "y")
    assert bp.calls == [True, True]


def test_block_on_an_unbound_method_holds_the_thread_before_the_call() -> None:
    """Breakpoint.block(Class.method), as in the original's own tests."""
    thing = Thing()
    with Breakpoint.block(Thing.advance_stage) as bp:
        bp.start_thread(thing.advance_stage, "done")
        bp.wait()
        assert thing.stage is None
    assert thing.stage == "done"


def test_block_on_return_of_a_bound_method() -> None:
    """A return breakpoint on a bound method blocks the thread after that call, until released."""
    thing = Thing()
    with Breakpoint.block(thing.advance_stage, event="return") as bp:
        bp.start_thread(thing.advance_multiple)
        bp.wait()
        assert thing.stage == "alpha"
    assert thing.stage == "delta"


def test_error_on_a_function_object_raises_in_the_thread() -> None:
    """Breakpoint.error on a function object raises the given exception in the calling thread."""
    caught: list[str] = []

    def trapping_errors(f: Any) -> None:
        try:
            f()
        except ValueError as exc:
            caught.append(exc.args[0])

    with Breakpoint.error(ValueError("abc"), Thing.advance_stage) as bp:
        bp.start_thread(trapping_errors, Thing().advance_multiple)
        bp.wait()
    assert caught == ["abc"]


def test_do_until_a_method_object_then_returns() -> None:
    """do(...).until(Class.method) and .returns, as the original's test_returns."""
    man = Man()
    t = do(man.add_mints, 4)
    with t.until(Man.add_mint):
        assert man.mints == 0
    assert man.mints == 4
    with t.until(man.add_mint).returns:
        assert man.mints == 5
    assert man.mints == 8


def test_do_error_on_a_function_object() -> None:
    """do(...).error_on raises the given exception from the target inside the helper's thread."""
    caught: list[str] = []

    def trapping_errors(f: Any, *args: Any) -> None:
        try:
            f(*args)
        except ValueError as exc:
            caught.append(exc.args[0])

    t = do(trapping_errors, square_of_x_plus_1, 4)
    with t.error_on(square_of_x, ValueError("xyz")):
        pass
    assert t.results == [None]
    assert caught == ["xyz"]


def test_decorated_method_object_is_the_same_target_as_its_path() -> None:
    """Thing.add5 (a functools.wraps wrapper) resolves to the function it wraps."""
    with (
        Breakpoint(Thing.add5) as by_object,
        Breakpoint(f"{THING}.add5") as by_path,
        Breakpoint((Thing, "add5"), condition=lambda self, n: n == 101) as by_pair,
    ):
        assert Thing().add5(1) == 106
    assert by_object.calls == by_path.calls == by_pair.calls == [True]


@pytest.mark.parametrize(
    "target",
    [
        (Thing, "static"),
        Thing.static,
        (Thing, "klass"),
        Thing.klass,
        f"{THING}.klass",
    ],
)
def test_staticmethod_and_classmethod_targets(target: Any) -> None:
    """A staticmethod or classmethod target, in each accepted form, is reached and still works."""
    with Breakpoint(target, event="return") as bp:
        assert Thing.static(4) == 8
        assert Thing().klass(4) == 12
    assert bp.calls == [True]


def test_property_pair_on_an_instance_does_not_run_the_getter() -> None:
    """(instance, "prop") breaks on the getter, which resolving the target does not call."""
    thing = Thing()
    before = Thing.getter_calls
    with Breakpoint((thing, "exists")) as bp:
        assert Thing.getter_calls == before
        assert thing.exists is True
    assert bp.calls == [True]
    assert Thing.getter_calls == before + 1


def test_module_pair_is_the_module_function() -> None:
    """(module, "name"), as in the original's stackframe test."""
    with Breakpoint((HERE, "square_of_x")) as bp:
        assert square_of_x_plus_1(2) == 9
    assert bp.calls == [True]


@pytest.mark.parametrize(
    "target, message",
    [
        ((Thing, 5), "string"),
        ((Thing, "advance_stage", "x"), "pair"),
        (42, "dotted path"),
    ],
)
def test_targets_of_no_accepted_form_raise_type_error(target: Any, message: str) -> None:
    """A target of no accepted form raises TypeError naming what it takes."""
    with pytest.raises(TypeError, match=message), Breakpoint(target):
        pass


def test_missing_attribute_in_a_pair_is_an_attribute_error() -> None:
    """An (owner, name) pair whose name does not exist raises AttributeError."""
    with pytest.raises(AttributeError, match="nosuch"), Breakpoint((Thing, "nosuch")):
        pass


def test_v3_form_object_and_name_blocks_until_released() -> None:
    """Breakpoint(obj, "funcname"), the 3.x form still in the 5.0.1 README, blocks."""
    thing = Thing()
    with Breakpoint(thing, "advance_stage") as bp:
        bp.start_thread(thing.advance_multiple)
        bp.wait()
        assert thing.stage is None
        assert bp.stackframe.f_locals["to"] == "alpha"
        bp.release()
        bp.wait()
        assert thing.stage == "alpha"
    assert thing.stage == "delta"


def test_v3_form_throw_raises_instead_of_blocking() -> None:
    """The (module, name) form with throw= raises that exception in the caller, not blocking."""
    with pytest.raises(KeyError), Breakpoint(HERE, "square_of_x", throw=KeyError("boom")):
        square_of_x_plus_1(1)


def test_wait_timeout_message_names_the_event() -> None:
    """A wait that times out says which breakpoint, event and timeout."""
    with (
        pytest.raises(RuntimeError) as info,
        Breakpoint((HERE, "square_of_x"), event="return", timeout=0.01) as bp,
    ):
        bp.wait()
    assert str(info.value) == (
        f"Breakpoint on {(HERE, 'square_of_x')} (event='return') not hit after 0.01 seconds."
    )


def test_do_returns_may_come_before_until() -> None:
    """Most do() modifiers return the do() itself, in any order (the original's docs)."""
    man = Man()
    with do(man.add_mints, 2).returns.until((Man, "add_mint")):
        assert man.mints == 1
    assert man.mints == 2


def test_callable_condition_results_are_kept_as_returned() -> None:
    """bp.calls holds what the condition returned, as the original kept it."""
    with Breakpoint(square_of_x, condition=lambda x: x if x > 1 else None) as bp:
        square_of_x(1)
        square_of_x(3)
    assert bp.calls == [None, 3]


# --- item 6: do() records an exception and re-raises it ---------------------------------


def test_do_records_the_exception_and_reraises_it(thread_errors: list[BaseException]) -> None:
    """The original's test_errors: results[0] is the TypeError the thread raised."""
    man = Man()
    man.mints = "not_a_number"
    t = do(man.add_mints, 3)
    with t.until((Man, "add_mint")).errors:
        assert man.mints == "not_a_number"
    assert man.mints == "not_a_number"
    assert len(t.results) == 1
    assert isinstance(t.results[0], TypeError)
    assert thread_errors == [t.results[0]]


def test_do_without_breakpoint_records_the_exception(thread_errors: list[BaseException]) -> None:
    """do() without a breakpoint records the exception its function raised, and the thread reports
    it."""
    t = do(square_of_x, "a")
    with t:
        pass
    assert [type(r) for r in t.results] == [TypeError]
    assert thread_errors == t.results


# --- item 7: the stackframe shows the call, not the breakpoint's plumbing ---------------


def test_stackframe_holds_the_arguments_args_and_kwargs_and_f_back_is_the_caller() -> None:
    """The original's test_stackframe, and no other names in the frame."""
    with Breakpoint.block((HERE, "square_of_x")) as bp:
        bp.start_thread(square_of_x_plus_1, 5)
        bp.wait()
        frame = bp.stackframe
        assert dict(frame.f_locals) == {"x": 6, "args": (6,), "kwargs": {}}
        assert frame.f_back.f_locals["x"] == 5
        assert frame.f_back.f_code is square_of_x_plus_1.__code__
        assert inspect.isframe(frame)


@pytest.mark.parametrize("event", ["return", "error"])
def test_stackframe_at_return_and_error_events_holds_no_plumbing(event: str) -> None:
    """At return and error events the stackframe holds the target's arguments only, and is cleared
    after."""
    seen: list[dict[str, Any]] = []
    bp = Breakpoint((HERE, "square_of_x"), event=event)
    bp.fire = lambda: seen.append(dict(bp.stackframe.f_locals))
    x: Any = 3 if event == "return" else "a"  # a str makes x * x raise TypeError
    with bp, pytest.raises(TypeError) if event == "error" else contextlib.nullcontext():
        square_of_x(x)
    expected = 3 if event == "return" else "a"
    assert seen == [{"x": expected, "args": (expected,), "kwargs": {}}]
    assert bp.stackframe is None


def test_stackframe_of_a_method_with_keyword_only_and_varargs() -> None:
    """The stackframe of a method shows self, positional, varargs, keyword-only and extra keywords
    by name."""

    class Shop:
        def order(self, item: str, *extras: str, qty: int = 1, **options: Any) -> str:
            return item

    seen: list[dict[str, Any]] = []
    shop = Shop()
    bp = Breakpoint((Shop, "order"))
    bp.fire = lambda: seen.append(dict(bp.stackframe.f_locals))
    with bp:
        assert shop.order("tea", "milk", qty=2, hot=True) == "tea"
    assert seen == [
        {
            "self": shop,
            "item": "tea",
            "extras": ("milk",),
            "qty": 2,
            "options": {"hot": True},
            "args": (shop, "tea", "milk"),
            "kwargs": {"qty": 2, "hot": True},
        }
    ]


def test_stackframe_of_a_function_taking_args_and_kwargs_shows_them() -> None:
    """A function taking *args and **kwargs shows them in the stackframe as args and kwargs."""

    def passthrough(*args: Any, **kwargs: Any) -> Any:
        return args, kwargs

    holder: Any = type("Holder", (), {"f": staticmethod(passthrough)})
    seen: list[dict[str, Any]] = []
    bp = Breakpoint((holder, "f"))
    bp.fire = lambda: seen.append(dict(bp.stackframe.f_locals))
    with bp:
        assert holder.f(1, k=2) == ((1,), {"k": 2})
    assert seen == [{"args": (1,), "kwargs": {"k": 2}}]


def test_exception_through_a_breakpoint_keeps_its_traceback() -> None:
    """The breakpoint's frame is not added to the target's traceback."""
    not_a_number: Any = "a"
    with Breakpoint((HERE, "square_of_x"), event="error"), pytest.raises(TypeError) as info:
        square_of_x(not_a_number)
    names = [entry.name for entry in info.traceback]
    assert names[-1] == "square_of_x"
    assert names.count("square_of_x") == 1


def test_generator_and_coroutine_targets_keep_working_under_a_breakpoint() -> None:
    """Generator and coroutine targets yield and return as before under a return breakpoint."""

    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    async def doubled(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    members = {"numbers": staticmethod(numbers), "doubled": staticmethod(doubled)}
    holder: Any = type("Holder", (), members)
    seen: list[dict[str, Any]] = []
    with Breakpoint((holder, "numbers"), event="return") as gen_bp:
        gen_bp.fire = lambda: seen.append(dict(gen_bp.stackframe.f_locals))
        assert list(holder.numbers(3)) == [0, 1, 2]
    with Breakpoint((holder, "doubled"), event="return") as co_bp:
        co_bp.fire = lambda: seen.append(dict(co_bp.stackframe.f_locals))
        assert asyncio.run(holder.doubled(4)) == 8
    assert inspect.isgeneratorfunction(numbers)
    assert inspect.iscoroutinefunction(doubled)
    assert seen == [{"n": 3, "args": (3,), "kwargs": {}}, {"n": 4, "args": (4,), "kwargs": {}}]


def test_async_generator_target_under_a_breakpoint_shows_no_plumbing() -> None:
    """An async generator under a breakpoint yields, takes asend() and shows only its own locals."""

    async def ticks(n: int) -> Any:
        for i in range(n):
            got = yield i
            if got is not None:
                yield got

    async def consume() -> list[Any]:
        gen = holder.ticks(3)
        out = [await gen.__anext__(), await gen.asend("sent")]
        out += [item async for item in gen]
        return out

    holder: Any = type("Holder", (), {"ticks": staticmethod(ticks)})
    seen: list[tuple[str, dict[str, Any]]] = []
    with (
        Breakpoint((holder, "ticks")) as at_call,
        Breakpoint((holder, "ticks"), event="return") as at_return,
    ):
        at_call.fire = lambda: seen.append(("call", dict(at_call.stackframe.f_locals)))
        at_return.fire = lambda: seen.append(("return", dict(at_return.stackframe.f_locals)))
        assert asyncio.run(consume()) == [0, "sent", 1, 2]
    assert inspect.isasyncgenfunction(ticks)
    plain = {"n": 3, "args": (3,), "kwargs": {}}
    assert seen == [("call", plain), ("return", plain)]


# --- builtins: no code to swap, so the references are replaced, as the original did ----


@pytest.fixture
def holder_of_getpid() -> Iterator[types.ModuleType]:
    """A module that did ``from os import getpid``."""
    module = types.ModuleType("compat_getpid_holder")
    vars(module)["getpid"] = os.getpid
    sys.modules[module.__name__] = module
    try:
        yield module
    finally:
        del sys.modules[module.__name__]


def test_error_on_a_builtin_by_dotted_path() -> None:
    """Breakpoint.error(OSError(...), "os.rename"): simulate a failing system call."""
    with (
        Breakpoint.error(OSError(28, "No space left on device"), "os.rename") as bp,
        pytest.raises(OSError, match="No space left"),
    ):
        os.rename("/nonexistent/a", "/nonexistent/b")
    assert bp.calls == [True]
    assert os.rename is posix_rename


def test_builtin_by_path_reaches_module_copies(holder_of_getpid: types.ModuleType) -> None:
    """A builtin named by dotted path is reached through module copies too, and restored after."""
    getpid = os.getpid
    with Breakpoint("os.getpid", condition=lambda: True) as bp:
        assert os.getpid() == holder_of_getpid.getpid() == getpid()
    assert bp.calls == [True, True]
    assert os.getpid is getpid
    assert holder_of_getpid.getpid is getpid


def test_builtin_by_pair_replaces_that_attribute_only(holder_of_getpid: types.ModuleType) -> None:
    """A builtin named by (owner, name) is replaced on that owner only."""
    with Breakpoint((os, "getpid")) as bp:
        holder_of_getpid.getpid()
        os.getpid()
    assert bp.calls == [True]


def test_do_until_a_builtin_blocks_the_thread_there() -> None:
    """do(...).until on a builtin holds the thread at its call, then lets it finish."""
    t = do(lambda: math.factorial(5))
    with t.until("math.factorial") as held:
        assert held.results == []
        assert dict(held.breakpoint.stackframe.f_locals) == {"args": (5,), "kwargs": {}}
    assert t.results == [120]
    assert math.factorial is factorial


def test_builtin_method_inherited_by_a_python_class() -> None:
    """A builtin method inherited by a Python class is caught for that class only, and left as it
    was."""

    class Stack(list):
        pass

    stack = Stack()
    with Breakpoint((Stack, "append"), event="return") as bp:
        stack.append(1)
        plain: list[int] = []
        plain.append(2)
    assert stack == [1]
    assert bp.calls == [True]
    assert "append" not in vars(Stack)


def test_builtin_method_of_one_instance() -> None:
    """A breakpoint on one instance's builtin method fires for that instance only, and goes at the
    end."""

    class Stack(list):
        pass

    mine, other = Stack(), Stack()
    with Breakpoint.error(ValueError("full"), (mine, "append")) as bp:
        other.append(1)
        with pytest.raises(ValueError, match="full"):
            mine.append(2)
    assert (mine, other) == ([], [1])
    assert bp.calls == [True]
    mine.append(3)
    assert mine == [3]


def test_error_event_is_for_exceptions_not_a_generator_closed_early() -> None:
    """The original's wrapper fired "error" on Exception only; GeneratorExit is not one."""

    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    holder: Any = type("Holder", (), {"numbers": staticmethod(numbers)})
    with (
        pytest.raises(AssertionError, match="was not met"),
        Breakpoint((holder, "numbers"), event="error") as bp,
    ):
        gen = holder.numbers(5)
        assert next(gen) == 0
        gen.close()
    assert bp.calls == []


@pytest.mark.parametrize("breakpoint_leaves_first", [True, False])
def test_breakpoint_and_probe_on_one_function(breakpoint_leaves_first: bool) -> None:
    """Both fire on each call, the frame still shows the call only, and either may go first."""
    import diagnose

    original = square_of_x.__code__
    target = f"{__name__}.square_of_x"
    seen: list[dict[str, Any]] = []
    bp = Breakpoint(square_of_x, event="return")
    bp.fire = lambda: seen.append(dict(bp.stackframe.f_locals))
    probe = diagnose.probes.attach_to(target)
    try:
        probe.instruments["t"] = inst = diagnose.ProbeTestInstrument("t", "result")
        probe.start()
        bp.__enter__()
        assert square_of_x_plus_1(2) == 9
        if breakpoint_leaves_first:
            bp.__exit__(None, None, None)
            assert square_of_x(4) == 16
            probe.stop()
        else:
            probe.stop()
            assert square_of_x(4) == 16
            bp.__exit__(None, None, None)
    finally:
        probe.stop()
        diagnose.probes.active_probes.pop(target, None)
    assert inst.results == ([9, 16] if breakpoint_leaves_first else [9])
    assert seen == [{"x": 3, "args": (3,), "kwargs": {}}] + (
        [] if breakpoint_leaves_first else [{"x": 4, "args": (4,), "kwargs": {}}]
    )
    assert square_of_x.__code__ is original


def test_stackframe_args_and_kwargs_are_as_the_call_passed_them() -> None:
    """As in the original's wrapper(*args, **kwargs); each parameter is there by name too."""
    thing = Thing()
    seen: list[dict[str, Any]] = []
    bp = Breakpoint(Thing.advance_stage, condition=0)
    bp.fire = lambda: seen.append(dict(bp.stackframe.f_locals))
    with bp:
        thing.advance_multiple()
    assert seen == [{"self": thing, "to": "alpha", "args": (thing,), "kwargs": {"to": "alpha"}}]


def test_stackframe_has_defaulted_parameters_by_name() -> None:
    """The stackframe holds defaulted parameters by name, as the call saw them."""

    def scaled(x: int, factor: int = 2, *, offset: int = 0) -> int:
        return x * factor + offset

    holder: Any = type("Holder", (), {"scaled": staticmethod(scaled)})
    seen: list[dict[str, Any]] = []
    bp = Breakpoint((holder, "scaled"))
    bp.fire = lambda: seen.append(dict(bp.stackframe.f_locals))
    with bp:
        assert holder.scaled(3) == 6
        assert holder.scaled(x=3, offset=1) == 7
    assert seen == [
        {"x": 3, "factor": 2, "offset": 0, "args": (3,), "kwargs": {}},
        {"x": 3, "factor": 2, "offset": 1, "args": (), "kwargs": {"x": 3, "offset": 1}},
    ]


def test_condition_gets_the_arguments_as_passed() -> None:
    """A condition reading **kwargs sees a keyword argument as a keyword."""
    with Breakpoint(Thing.advance_stage, condition=lambda *a, **kw: kw["to"] == "gamma") as bp:
        Thing().advance_multiple()
    assert bp.calls == [False, False, True, False]


def test_signature_and_defaults_unchanged_under_a_breakpoint() -> None:
    """A target's signature and defaults are unchanged under a breakpoint and after."""
    before = inspect.signature(Thing.advance_stage)
    defaults = square_of_x.__defaults__
    with Breakpoint(Thing.advance_stage):
        assert inspect.signature(Thing.advance_stage) == before
        assert square_of_x.__defaults__ == defaults
        Thing().advance_stage("x")
    assert "__signature__" not in vars(Thing.advance_stage)
    assert inspect.signature(Thing.advance_stage) == before


def test_a_call_that_does_not_bind_raises_the_targets_own_error() -> None:
    """The call and error events fire, as in the original, and the message is the target's."""
    with pytest.raises(TypeError) as plain:
        square_of_x()  # type: ignore[call-arg]
    with (
        Breakpoint(square_of_x, event="error") as bp,
        pytest.raises(TypeError) as probed,
    ):
        square_of_x()  # type: ignore[call-arg]
    assert str(probed.value) == str(plain.value)
    assert bp.calls == [True]
