"""The plan: which names each event's wrapper builds, and the lines that fire the gates."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

import diagnose
from diagnose import ProbeTestInstrument
from diagnose._swap.plan import Plan
from probe_targets import shop


class FakePatch:
    """What a Plan asks of its patch, without a function to patch."""

    codes: set[Any] = set()
    signature = None

    def expired(self) -> None:
        pass


def plan_for(*instruments: Any, func: Any = shop.price) -> Plan:
    return Plan(FakePatch(), [(i, None) for i in instruments], func.__code__)  # type: ignore[arg-type]


def inst(value: str, event: str = "return", **kwargs: Any) -> ProbeTestInstrument:
    return ProbeTestInstrument("p", value, event, mgr=diagnose.manager, **kwargs)


def source(plan: Plan) -> str:
    s = plan.sections()
    return "\n".join(s.before + ["--after--"] + s.after + ["--error--"] + s.on_error)


def test_only_the_names_read_are_built() -> None:
    """A return instrument reading result builds {'result': _dgn_r} and nothing else."""
    plan = plan_for(inst("result"))
    assert plan.sig.exact
    text = source(plan)
    assert "{'result': _dgn_r}" in text
    assert "utcnow" not in text.split("--after--")[1]
    # nothing reads a time or can expire: no clock read, no expiry test, no unused local
    assert "_dgn_t0" not in text and "_dgn_on" not in text and "_dgn_h" not in text


def test_args_and_kwargs_need_the_generic_wrapper() -> None:
    """An expression reading args or kwargs needs the generic wrapper; one reading arguments by name
    does not."""
    assert not plan_for(inst("(args, kwargs)")).sig.exact
    assert plan_for(inst("amount")).sig.exact


def test_times_are_read_only_when_wanted() -> None:
    """The clock is read before and after the call when an expression wants elapsed."""
    text = source(plan_for(inst("elapsed")))
    assert "_dgn_t0 = '@_dgn_clock'.time()" in text and "_dgn_t1 = '@_dgn_clock'.time()" in text


def test_a_raise_runs_the_same_return_lines() -> None:
    """On a raise, result is the exception and the return gates fire through the same lines."""
    s = plan_for(inst("result")).sections()
    assert "_dgn_r = _dgn_e" in "\n".join(s.on_error)

    def shape(lines: list[str]) -> list[str]:
        return [re.sub(r"_dgn_([gf])\d+", r"_dgn_\1N", line.strip()) for line in lines]

    start = s.after.index("if True:")
    assert shape(s.after[start + 1 :]) == shape(s.on_error[-len(s.after) + start + 1 :])


def test_end_gates_fire_from_the_target_and_on_raise() -> None:
    """End instruments fire from inside the target, and on a raise too."""
    plan = plan_for(inst("subtotal", "end"))
    assert plan.hooks == (True, frozenset())
    assert "'@_dgn_p'.ends_on_raise(_dgn_e)" in "\n".join(plan.sections().on_error)
    assert plan.sites[None].other_names == frozenset() and plan.sites[None].gates == plan.ends


def test_line_gates_are_grouped_by_line() -> None:
    """Line instruments are grouped by their line, one hook per line."""
    a, b = inst("amount", "line", line=16), inst("rate", "line", line=16)
    plan = plan_for(a, b, inst("1", "line", line=17))
    assert sorted(plan.lines) == [16, 17] and len(plan.lines[16]) == 2
    assert plan.hooks == (False, frozenset({16, 17}))


def test_the_earliest_deadline_is_checked_before_the_call() -> None:
    """The earliest expiry among the instruments is checked before each call."""
    soon = dt.datetime(2030, 1, 1)
    plan = plan_for(inst("result", expires=soon), inst("result", expires=None))
    assert plan.deadline == pytest.approx(soon.replace(tzinfo=dt.UTC).timestamp())
    assert "_dgn_on = _dgn_t0 < '@_dgn_deadline'" in source(plan)


def test_a_plain_gate_is_inlined_and_a_limited_one_is_called() -> None:
    """The common gate's untimed evaluation is inlined; a rate-limited one calls gate.fire."""
    plain = inst("result")
    limited = inst("result")
    limited.rate = 10
    plan = plan_for(plain, limited)
    s = plan.sections()
    plain_gate, limited_gate = plan.returns
    inlined = [repr(name) for name, value in s.consts.items() if value is plain]
    called = [repr(name) for name, value in s.consts.items() if value is limited_gate]
    assert inlined and called
    text = "\n".join(s.after)
    assert any(f"{n}.fire({n}.mgr.global_namespace, _dgn_ns)" in text for n in inlined)
    assert any(f"{n}.fire(_dgn_ns)" in text for n in called)
    assert not any(value is limited for value in s.consts.values())
