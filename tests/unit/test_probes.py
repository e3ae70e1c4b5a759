"""Probes on every kind of target: what each event sees, what every reference sees, and
that the target's own behaviour (result, exception, traceback, signature) never changes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import inspect
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import diagnose
from diagnose.probes import active_probes
from probe_targets import elsewhere, shop
from support.probes import ProbeSet


@pytest.fixture
def probes() -> Iterator[ProbeSet]:
    """Probes the test attaches; all stopped and forgotten at its end."""
    with ProbeSet() as ps:
        yield ps


def _drain_async(agen_func: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
    async def drain() -> list[Any]:
        return [item async for item in agen_func(*args, **kwargs)]

    return asyncio.run(drain())


@dataclass
class Case:
    """One kind of target: how to call it and what its probe should see."""

    kind: str
    target: str
    func: Callable[[], Callable[..., Any]]  # the Python function the probe patches
    invoke: Callable[[], Any]  # calls the target as a user would; returns what they get
    returned: Any  # what invoke() gives the caller
    result: Any  # what the probe's ``result`` is
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    named: dict[str, Any]  # arguments by name
    end_locals: dict[str, Any] = field(default_factory=dict)
    min_elapsed: float = 0.0


CASES = [
    Case(
        "module function",
        "probe_targets.shop.price",
        lambda: shop.price,
        lambda: shop.price(5, 2, discount=1),
        9,
        9,
        (5, 2),
        {"discount": 1},
        {"amount": 5, "rate": 2, "discount": 1},
        {"subtotal": 10},
    ),
    Case(
        "instance method",
        "probe_targets.shop.Cart.total",
        lambda: shop.Cart.total,
        lambda: shop.CART.total(5, 2, discount=1),
        9,
        9,
        (shop.CART, 5, 2),
        {"discount": 1},
        {"self": shop.CART, "amount": 5, "rate": 2, "discount": 1},
        {"subtotal": 10},
    ),
    Case(
        "staticmethod",
        "probe_targets.shop.Cart.scale",
        lambda: vars(shop.Cart)["scale"].__func__,
        lambda: shop.CART.scale(5, 2, discount=1),
        9,
        9,
        (5, 2),
        {"discount": 1},
        {"amount": 5, "rate": 2, "discount": 1},
        {"subtotal": 10},
    ),
    Case(
        "classmethod",
        "probe_targets.shop.Cart.build",
        lambda: vars(shop.Cart)["build"].__func__,
        lambda: shop.Cart.build(5, 2, discount=1),
        9,
        9,
        (shop.Cart, 5, 2),
        {"discount": 1},
        {"cls": shop.Cart, "amount": 5, "rate": 2, "discount": 1},
        {"subtotal": 10},
    ),
    Case(
        "property getter",
        "probe_targets.shop.Cart.size",
        lambda: vars(shop.Cart)["size"].fget,
        lambda: shop.CART.size,
        7,
        7,
        (shop.CART,),
        {},
        {"self": shop.CART},
        {"subtotal": 8},
    ),
    Case(
        "functools.wraps decorated",
        "probe_targets.shop.wrapped_price",
        lambda: shop.wrapped_price.__wrapped__,
        lambda: shop.wrapped_price(5, 2, discount=1),
        9,
        9,
        (5, 2),
        {"discount": 1},
        {"amount": 5, "rate": 2, "discount": 1},
        {"subtotal": 10},
    ),
    Case(
        "async def",
        "probe_targets.shop.fetch_price",
        lambda: shop.fetch_price,
        lambda: asyncio.run(shop.fetch_price(5, 2, discount=1)),
        9,
        9,
        (5, 2),
        {"discount": 1},
        {"amount": 5, "rate": 2, "discount": 1},
        {"subtotal": 10},
        min_elapsed=0.02,
    ),
    Case(
        "generator",
        "probe_targets.shop.countdown",
        lambda: shop.countdown,
        lambda: list(shop.countdown(5, 2, discount=1)),
        [0, 1, 2],
        9,
        (5, 2),
        {"discount": 1},
        {"amount": 5, "rate": 2, "discount": 1},
        {"subtotal": 10, "step": 2},
    ),
    Case(
        "async generator",
        "probe_targets.shop.acountdown",
        lambda: shop.acountdown,
        lambda: _drain_async(shop.acountdown, 5, 2, discount=1),
        [0, 1, 2],
        None,
        (5, 2),
        {"discount": 1},
        {"amount": 5, "rate": 2, "discount": 1},
        {"subtotal": 10, "step": 2},
    ),
]

by_kind = pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@by_kind
def test_call_event_sees_arguments_and_times(probes: ProbeSet, case: Case) -> None:
    """A call instrument sees args, kwargs, each argument by name, start, now and frame."""
    original = case.func().__code__
    named = "{" + ", ".join(f"{k!r}: {k}" for k in case.named) + "}"
    inst = probes.attach(case.target, f"(args, kwargs, {named}, start, now, frame)", event="call")
    t0, n0 = time.time(), _utcnow()
    assert case.invoke() == case.returned
    t1, n1 = time.time(), _utcnow()
    assert len(inst.results) == 1
    args, kwargs, named_values, start, now, frame = inst.results[0]
    assert args == case.args
    assert kwargs == case.kwargs
    assert named_values == case.named
    assert t0 <= start <= t1
    assert n0 <= now <= n1
    assert inspect.isframe(frame)
    assert frame.f_code.co_name == original.co_name


@by_kind
def test_return_event_sees_result_and_elapsed(probes: ProbeSet, case: Case) -> None:
    """A return instrument sees the call's names plus result, end and elapsed."""
    named = "{" + ", ".join(f"{k!r}: {k}" for k in case.named) + "}"
    inst = probes.attach(case.target, f"(result, args, kwargs, {named}, start, end, elapsed)")
    t0 = time.time()
    assert case.invoke() == case.returned
    t1 = time.time()
    [(result, args, kwargs, named_values, start, end, elapsed)] = inst.results
    assert result == case.result
    assert (args, kwargs, named_values) == (case.args, case.kwargs, case.named)
    assert t0 <= start <= end <= t1
    assert elapsed == pytest.approx(end - start)
    assert case.min_elapsed <= elapsed <= t1 - t0


@by_kind
def test_end_event_sees_the_targets_locals(probes: ProbeSet, case: Case) -> None:
    """An end instrument runs inside the target and reads its local variables."""
    names = "{" + ", ".join(f"{k!r}: {k}" for k in case.end_locals) + "}"
    inst = probes.attach(case.target, names, event="end")
    assert case.invoke() == case.returned
    assert inst.results == [case.end_locals]


@by_kind
def test_probe_detaches_on_stop(probes: ProbeSet, case: Case) -> None:
    """While attached the target runs other code; after stop() its original code is back."""
    func = case.func()
    original = func.__code__
    inst = probes.attach(case.target)
    assert func.__code__ is not original
    probe = active_probes[case.target]
    probe.stop()
    assert func.__code__ is original
    assert case.invoke() == case.returned
    assert inst.results == []


@by_kind
def test_probe_keeps_the_kind_of_function(probes: ProbeSet, case: Case) -> None:
    """A probed target is still a generator, coroutine or async generator function."""
    func = case.func()
    checks = (
        inspect.isgeneratorfunction,
        inspect.iscoroutinefunction,
        inspect.isasyncgenfunction,
    )
    before = [check(func) for check in checks]
    signature = inspect.signature(func)
    probes.attach(case.target, event="end", value="1")
    probes.attach(case.target, value="result")
    assert [check(func) for check in checks] == before
    assert inspect.signature(func) == signature
    assert case.invoke() == case.returned
    assert case.invoke() == case.returned


def test_generator_send_and_throw_pass_through(probes: ProbeSet) -> None:
    """A probed generator still receives sent values and thrown exceptions."""
    inst = probes.attach("probe_targets.shop.echo", value="result")
    gen = shop.echo()
    assert next(gen) is None
    assert gen.send("a") == "a"
    assert gen.throw(KeyError("k")) == "caught k"
    gen.close()
    assert inspect.getgeneratorstate(gen) == inspect.GEN_CLOSED
    assert probes.mgr.errors == []
    assert len(inst.results) == 1


def test_async_generator_asend_and_athrow_pass_through(probes: ProbeSet) -> None:
    """A probed async generator still receives sent values and thrown exceptions."""
    probes.attach("probe_targets.shop.aecho", value="result")

    async def main() -> list[object]:
        agen = shop.aecho()
        got = [await agen.__anext__(), await agen.asend("a"), await agen.athrow(KeyError("k"))]
        await agen.aclose()
        return got

    assert asyncio.run(main()) == [None, "a", "caught k"]
    assert probes.mgr.errors == []


# --- every reference sees the probe ---------------------------------------------------

REFERENCES = {
    "module attribute": lambda: shop.price(5),
    "from-import copy": lambda: elsewhere.price(5),
    "dict registry": lambda: elsewhere.REGISTRY["price"](5),
    "closure": lambda: elsewhere.caller(5),
    "functools.partial": lambda: elsewhere.half_off(5) + 1,
    "decorator's captured reference": lambda: elsewhere.retried_price(5),
}


@pytest.mark.parametrize("call", REFERENCES.values(), ids=list(REFERENCES))
def test_every_reference_sees_the_probe(probes: ProbeSet, call: Callable[[], int]) -> None:
    """A call through any reference to the target function fires its probe."""
    inst = probes.attach("probe_targets.shop.price", value="amount")
    assert call() == 10
    assert inst.results == [5]


def test_two_target_names_for_one_function_share_it(probes: ProbeSet) -> None:
    """Probes on mod.f and other.f both fire; stopping one leaves the other attached."""
    original = shop.price.__code__
    a = probes.attach("probe_targets.shop.price", value="amount", name="a")
    b = probes.attach("probe_targets.elsewhere.price", value="result", name="b")
    assert shop.price(3, discount=1) == 5
    assert (a.results, b.results) == ([3], [5])
    active_probes["probe_targets.shop.price"].stop()
    assert elsewhere.price(4) == 8
    assert (a.results, b.results) == ([3], [5, 8])
    active_probes["probe_targets.elsewhere.price"].stop()
    assert shop.price.__code__ is original


# --- the target's behaviour never changes ---------------------------------------------

BAD_VALUES = {
    "ZeroDivisionError": "1 / 0",
    "NameError": "no_such_name",
    "AttributeError": "result.no_such_attribute",
    "SystemExit": "exit(3)",
}


@pytest.mark.parametrize("event", ["call", "return", "end"])
@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=list(BAD_VALUES))
def test_failing_instrument_never_changes_the_result(
    probes: ProbeSet, event: str, value: str
) -> None:
    """An instrument that raises leaves the result alone, stops firing, and reports once."""
    good = probes.attach("probe_targets.shop.price", value="amount", name="good", event=event)
    bad = probes.attach("probe_targets.shop.price", value=value, name="bad", event=event)
    assert shop.price(5, 2, discount=1) == 9
    assert shop.price(6) == 12
    assert good.results == [5, 6]
    assert len(probes.mgr.errors) == 1
    probe, instrument, exc = probes.mgr.errors[0]
    assert instrument is bad
    assert probe is active_probes["probe_targets.shop.price"]
    assert exc is not None
    assert bad.error and type(exc).__name__ in bad.error


@pytest.mark.parametrize("event", ["call", "return", "end"])
@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=list(BAD_VALUES))
def test_failing_instrument_never_changes_the_exception(
    probes: ProbeSet, event: str, value: str
) -> None:
    """An instrument that raises on a raising target leaves the target's exception alone."""
    probes.attach("probe_targets.shop.fail", value=value, event=event)
    for _ in range(2):
        with pytest.raises(ValueError) as info:
            shop.fail("x")
        assert info.value.args == ("bad x (1)",)
        assert info.value.__context__ is None
    assert len(probes.mgr.errors) == 1


@pytest.mark.parametrize("event", ["call", "return", "end", None])
def test_traceback_is_unchanged(probes: ProbeSet, event: str | None) -> None:
    """The target's exception has the same type and traceback, with no frames of diagnose."""

    def frames() -> list[traceback.FrameSummary]:
        try:
            shop.fail("x", code=2)
        except ValueError as exc:
            return traceback.extract_tb(exc.__traceback__)
        raise AssertionError("no exception")

    before = [(f.filename, f.lineno, f.name) for f in frames()]
    if event is not None:
        probes.attach("probe_targets.shop.fail", value="1", event=event)
    tb = frames()
    assert [(f.filename, f.lineno, f.name) for f in tb] == before
    assert tb[-1].filename == shop.__file__
    assert tb[-1].line == "raise ValueError(detail)  # raise here"
    assert not any("diagnose" in f.filename for f in tb)


def test_traceback_through_probed_recursion(probes: ProbeSet) -> None:
    """A deep recursive target's traceback has one frame per level and its raising line last."""
    probes.attach("probe_targets.shop.fail_deep", value="result")
    with pytest.raises(KeyError) as info:
        shop.fail_deep(3)
    tb = traceback.extract_tb(info.value.__traceback__)
    assert [f.name for f in tb[1:]] == ["fail_deep"] * 4
    assert "raise KeyError" in (tb[-1].line or "")
    assert not any("diagnose" in f.filename for f in tb)


def test_return_instrument_sees_the_exception_as_result(probes: ProbeSet) -> None:
    """On a raising target, result is the exception and the call's names are all there."""
    inst = probes.attach(
        "probe_targets.shop.fail", value="(result, message, code, args, kwargs, frame, elapsed)"
    )
    with pytest.raises(ValueError) as info:
        shop.fail("x", code=2)
    [(result, message, code, args, kwargs, frame, elapsed)] = inst.results
    assert result is info.value
    assert (message, code, args, kwargs) == ("x", 2, ("x",), {"code": 2})
    assert inspect.isframe(frame)
    assert elapsed >= 0
    assert probes.mgr.errors == []


def test_end_instrument_on_raise_sees_the_locals(probes: ProbeSet) -> None:
    """An end instrument fires in the frame of a target that raises, reading its locals."""
    inst = probes.attach("probe_targets.shop.fail", value="detail", event="end")
    with pytest.raises(ValueError):
        shop.fail("y")
    assert inst.results == ["bad y (1)"]


def test_defaults_keyword_only_and_star_arguments(probes: ProbeSet) -> None:
    """Positional-only, default, *args, keyword-only and **kwargs parameters all still work."""
    func: Callable[..., Any] = shop.gather  # called below with arguments it refuses
    signature = inspect.signature(func)
    inst = probes.attach("probe_targets.shop.gather", value="(first, second, scale)")
    assert func(1) == (11, [])
    assert func(1, 2, 3, 4, scale=2, x=1) == (20, ["x"])
    with pytest.raises(TypeError):
        func(first=1)
    assert inspect.signature(func) == signature
    assert func.__defaults__ == (10,) and func.__kwdefaults__ == {"scale": 1}
    assert inst.results == [(1, 10, 1), (1, 2, 2)]
    assert probes.mgr.errors == []


@pytest.mark.parametrize("event", ["call", "return"])
def test_star_parameters_are_readable_by_name(probes: ProbeSet, event: str) -> None:
    """The *args and **kwargs parameters are arguments too, readable by their own names."""
    inst = probes.attach("probe_targets.shop.gather", value="(more, options)", event=event)
    assert shop.gather(1, 2, 3, 4, scale=2, x=1) == (20, ["x"])
    assert probes.mgr.errors == []
    assert inst.results == [((3, 4), {"x": 1})]


@pytest.mark.parametrize("event", ["call", "return", "end"])
def test_recursion_fires_for_every_level(probes: ProbeSet, event: str) -> None:
    """A recursive target fires its probe once per call, at every level."""
    inst = probes.attach("probe_targets.shop.factorial", value="n", event=event)
    assert shop.factorial(5) == 120
    expected = [5, 4, 3, 2, 1] if event == "call" else [1, 2, 3, 4, 5]
    assert inst.results == expected


@pytest.mark.parametrize("event", ["call", "return", "end"])
def test_arguments_readable_inside_comprehensions(probes: ProbeSet, event: str) -> None:
    """An expression can read the target's names inside a comprehension or generator."""
    inst = probes.attach(
        "probe_targets.shop.price", value="[amount * i for i in range(3)]", event=event
    )
    assert shop.price(5) == 10
    assert probes.mgr.errors == []
    assert inst.results == [[0, 5, 10]]


def test_method_using_super_still_works(probes: ProbeSet) -> None:
    """A method that calls zero-argument super() works while probed."""
    inst = probes.attach("probe_targets.shop.Cart.describe", value="result")
    assert shop.CART.describe() == "cart of base"
    assert inst.results == ["cart of base"]


def test_async_result_and_elapsed_cover_the_await(probes: ProbeSet) -> None:
    """For async def, result is the awaited value and elapsed includes the await."""
    inst = probes.attach("probe_targets.shop.fetch_price", value="(result, elapsed)")

    async def main() -> tuple[int, float]:
        t0 = time.perf_counter()
        value = await shop.fetch_price(2)
        return value, time.perf_counter() - t0

    value, took = asyncio.run(main())
    [(result, elapsed)] = inst.results
    assert value == result == 4
    assert 0.02 <= elapsed <= took + 0.01


def test_unknown_target_raises_probe_error(probes: ProbeSet) -> None:
    """Starting a probe on a missing attribute or a non-function raises ProbeError."""
    for target in ("probe_targets.shop.nothing_here", "probe_targets.shop.RATE"):
        probe = diagnose.probes.attach_to(target)
        with pytest.raises(diagnose.ProbeError):
            probe.start()


def test_probe_does_not_touch_other_functions(probes: ProbeSet) -> None:
    """Probing one function leaves other functions' code objects alone."""
    codes = {f: f.__code__ for f in (shop.add, shop.factorial, elsewhere.make_caller)}
    probes.attach("probe_targets.shop.price")
    assert {f: f.__code__ for f in codes} == codes
    assert functools.reduce(shop.add, [1, 2, 3]) == 6


def test_frame_is_the_callers_callee(probes: ProbeSet) -> None:
    """``frame.f_back`` is the caller's frame, so instruments can say who called."""
    inst = probes.attach("probe_targets.shop.price", value="frame.f_back.f_code.co_name")
    shop.price(1)
    assert inst.results == [sys._getframe().f_code.co_name]


@pytest.mark.parametrize("probe_first", [True, False], ids=["probe-first", "breakpoint-first"])
@pytest.mark.parametrize("probe_stops_first", [True, False], ids=["probe-stops", "bp-exits"])
def test_probe_and_breakpoint_on_one_function(
    probes: ProbeSet, probe_first: bool, probe_stops_first: bool
) -> None:
    """A probe and a Breakpoint on one function, in any order: both work, and when both
    are gone the original code is back and the stopped probe never fires again."""
    original = shop.add.__code__
    bp = diagnose.breakpoints.Breakpoint("probe_targets.shop.add")
    try:
        if probe_first:
            inst = probes.attach("probe_targets.shop.add", "result")
            bp.__enter__()
        else:
            bp.__enter__()
            inst = probes.attach("probe_targets.shop.add", "result")
        assert shop.add(1, 2) == 3
        assert bp.calls == [True]
        assert inst.results == [3]
        if probe_stops_first:
            probes.close()
        bp.__exit__(None, None, None)
        probes.close()
        assert shop.add(3, 4) == 7
        assert inst.results == [3]
        assert shop.add.__code__ is original
    finally:
        # Whatever failed, leave shop.add as it was for the other tests.
        with contextlib.suppress(AssertionError):
            bp.__exit__(None, None, None)
        probes.close()
        shop.add.__code__ = original


@pytest.mark.parametrize("value", ["(args, kwargs)", "(args, amount, rate, discount)", "amount"])
@pytest.mark.parametrize("event", ["call", "return"])
def test_callers_mistake_is_not_an_instrument_error(
    probes: ProbeSet, value: str, event: str
) -> None:
    """A call with wrong arguments raises the same TypeError, and the instrument keeps firing."""

    def mistake() -> str:
        price: Callable[..., Any] = shop.price  # called with one argument too many
        try:
            price(1, 2, 3)
        except TypeError as exc:
            return str(exc)
        raise AssertionError("no TypeError")

    expected = mistake()
    inst = probes.attach("probe_targets.shop.price", value, event=event)
    assert mistake() == expected
    assert shop.price(3) == 6
    assert probes.mgr.errors == []
    assert inst.results and inst.error is None


@pytest.mark.parametrize("event", ["call", "return"])
def test_defaults_are_readable_by_name_with_args(probes: ProbeSet, event: str) -> None:
    """Arguments left to their defaults are readable by name, alongside args and kwargs."""
    inst = probes.attach(
        "probe_targets.shop.price", "(args, kwargs, amount, rate, discount)", event=event
    )
    shop.price(amount=4)
    [(args, kwargs, amount, rate, discount)] = inst.results
    assert (amount, rate, discount) == (4, 2, 0)
    assert args + tuple(kwargs.values()) in ((4,), (4, 2, 0))


def test_signature_and_code_restored_after_stop(probes: ProbeSet) -> None:
    """After stop() the function has no __signature__ of the probe's and its own code back."""
    func = shop.price
    original, attrs, signature = func.__code__, dict(vars(func)), inspect.signature(func)
    probes.attach("probe_targets.shop.price", "(args, kwargs)")
    assert inspect.signature(func) == signature
    probes.close()
    assert func.__code__ is original
    assert dict(vars(func)) == attrs


def test_probe_frame_is_filed_at_the_targets_def_line(probes: ProbeSet) -> None:
    """The wrapper's frame (``frame``) is named after the target and filed at its file and
    ``def`` line, so no traceback or stack sends a reader to other code of its file."""
    first = shop.price.__code__.co_firstlineno
    inst = probes.attach(
        "probe_targets.shop.price",
        "(frame.f_code.co_filename, frame.f_code.co_name, frame.f_lineno)",
    )
    shop.price(1)
    assert inst.results == [(shop.__file__, "price", first)]
    assert shop.price.__code__.co_filename == shop.__file__
    probes.close()
    assert shop.price.__code__.co_filename == shop.__file__
