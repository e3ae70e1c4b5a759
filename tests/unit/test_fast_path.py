"""The apply fast path: an edit that keeps a probe's plan swaps a deadline into the installed
wrapper, a spec published again unchanged only moves its expiry, each apply refreshes a
probe once, and the kept verdicts never let a refused expression through."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

import diagnose
from diagnose import ProbeManager, ProbeTestInstrument
from diagnose import spec as spec_module
from diagnose._output import redaction
from diagnose._safety.policy import VERDICTS, Policy
from diagnose._safety.verdicts import Verdicts
from diagnose._swap.patch import Patch
from diagnose._swap.plan import DEADLINE
from diagnose.instruments.base import KEPT
from diagnose.probes import active_probes
from probe_targets import shop
from support.probes import CapturingManager, ProbeSet
from support.waiting import wait_for

TARGET = "probe_targets.shop.price"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def mgr() -> Iterator[CapturingManager]:
    """A manager of the test's own, with a "test" instrument type; emptied at the end."""
    manager = CapturingManager("fast-path")
    with ProbeSet():
        try:
            yield manager
        finally:
            manager.specs.clear()
            manager.apply()


def spec(
    value: str = "result * 2",
    lastmodified: dt.datetime | None = None,
    lifespan: float | None = 10,
    **custom: Any,
) -> dict[str, Any]:
    """Return a test instrument spec on shop.price, published now (or at lastmodified)."""
    return {
        "target": TARGET,
        "instrument": {"type": "test", "name": "fast", "value": value, "custom": custom},
        "lifespan": lifespan,
        "lastmodified": lastmodified or dt.datetime.now(dt.UTC),
        "applied": {},
    }


def publish(mgr: ProbeManager, spec_id: str = "s", **kwargs: Any) -> dict[str, Any]:
    """Put a spec in the manager (a new object, as the subscriber hands over) and apply it."""
    body = spec(**kwargs)
    mgr.specs[spec_id] = body
    mgr.apply_specs([spec_id])
    return body


def the_patch() -> Patch:
    patch = active_probes[TARGET]._patch
    assert patch is not None
    return patch


def instrument(mgr: ProbeManager, spec_id: str = "s") -> ProbeTestInstrument:
    inst = active_probes[TARGET].instruments[f"{mgr.short_id}:{spec_id}"]
    assert isinstance(inst, ProbeTestInstrument)
    return inst


def error_of(mgr: ProbeManager, spec_id: str = "s") -> str | None:
    entry: dict[str, Any] = mgr.specs[spec_id]["applied"][mgr.process_id]
    return entry["err"]


def installed_deadline(patch: Patch) -> float:
    """Return the deadline constant of the installed wrapper."""
    code = shop.price.__code__
    assert code is patch.installed and patch._deadline_slot is not None
    value: float = code.co_consts[patch._deadline_slot]
    return value


def test_an_edit_keeping_event_and_names_keeps_the_wrapper(mgr: ProbeManager) -> None:
    """An edited value reading the same names, with a later expiry, keeps the plan and the
    installed wrapper (the same code object, its deadline the earlier one); the new
    expression fires."""
    first = publish(mgr, value="result * 2")
    patch = the_patch()
    plan, code, rebuilds = patch.plan, shop.price.__code__, patch.rebuilds
    publish(mgr, value="result * 3")
    assert patch.rebuilds == rebuilds and patch.plan is plan and plan is not None
    assert shop.price.__code__ is code
    assert installed_deadline(patch) == plan.deadline
    assert plan.deadline == (first["lastmodified"] + dt.timedelta(minutes=10)).timestamp()
    assert shop.price(2) == 4
    assert instrument(mgr).results == [12]
    assert error_of(mgr) is None


def test_an_edit_to_a_sooner_expiry_swaps_the_deadline_in(mgr: ProbeManager) -> None:
    """An edit whose expiry comes sooner than the installed deadline swaps it into the
    same plan's wrapper at once (a copy of the code with that constant changed)."""
    publish(mgr, value="result * 2")
    patch = the_patch()
    plan, code, rebuilds = patch.plan, shop.price.__code__, patch.rebuilds
    edited = publish(mgr, value="result * 3", lifespan=5)
    assert patch.rebuilds == rebuilds and patch.plan is plan and plan is not None
    assert shop.price.__code__ is not code and shop.price.__code__.co_code == code.co_code
    expires = (edited["lastmodified"] + dt.timedelta(minutes=5)).timestamp()
    assert installed_deadline(patch) == expires == plan.deadline


def test_a_call_past_a_deadline_that_moved_later_still_fires(mgr: ProbeManager) -> None:
    """Once the installed deadline passes while the instrument lives on (its spec was
    published again with a later expiry), the call that finds it passed fires, and the
    wrapper then holds the later deadline."""
    now = dt.datetime.now(dt.UTC)
    publish(mgr, value="result * 2", lastmodified=now - dt.timedelta(seconds=599.5))
    patch = the_patch()
    plan = patch.plan
    assert plan is not None and plan.deadline is not None
    publish(mgr, value="result * 3")  # ten minutes from now
    first_deadline = plan.deadline
    assert installed_deadline(patch) == first_deadline
    assert wait_for(lambda: time.time() > first_deadline, timeout=3)
    assert shop.price(2) == 4
    assert instrument(mgr).results == [12]
    assert patch.plan is plan and plan.deadline > first_deadline + 500
    assert installed_deadline(patch) == plan.deadline


def test_an_end_probe_past_a_deadline_that_moved_later_still_fires_on_a_raise(
    mgr: ProbeManager,
) -> None:
    """An end instrument, when the target raises past the installed deadline while the
    instrument lives on, fires in the raising frame all the same."""
    now = dt.datetime.now(dt.UTC)
    body = spec("amount", lastmodified=now - dt.timedelta(seconds=599.5))
    body["instrument"]["event"] = "end"
    mgr.specs["s"] = body
    mgr.apply_specs(["s"])
    plan = the_patch().plan
    assert plan is not None and plan.deadline is not None
    again = spec("amount * 2")
    again["instrument"]["event"] = "end"
    mgr.specs["s"] = again
    mgr.apply_specs(["s"])
    first_deadline = plan.deadline
    assert wait_for(lambda: time.time() > first_deadline, timeout=3)
    with pytest.raises(TypeError):
        shop.price("ab", rate=None)
    assert instrument(mgr).results == ["abab"]


def test_an_edit_reading_other_names_plans_again(mgr: ProbeManager) -> None:
    """An edited value that reads another name is not the same shape: the plan is made
    again, and the new expression sees its name."""
    publish(mgr, value="result * 2")
    patch = the_patch()
    plan, rebuilds = patch.plan, patch.rebuilds
    publish(mgr, value="amount + 1")
    assert patch.rebuilds == rebuilds + 1 and patch.plan is not plan
    assert shop.price(5) == 10
    assert instrument(mgr).results == [6]


@pytest.mark.parametrize(
    "edit",
    [
        {"value": "result * 3"},
        {"value": "amount"},
        {"value": "result * 2", "rate": 5},
        {"value": "result * 2"},  # published again, unchanged
    ],
)
def test_each_apply_refreshes_the_probe_once(mgr: ProbeManager, edit: dict[str, Any]) -> None:
    """Whatever the edit (another value, other names, a rate limit, nothing), one apply
    makes or retunes the probe's plan once: never twice."""
    publish(mgr, value="result * 2")
    patch = the_patch()
    before = patch.rebuilds + patch.retunes
    publish(mgr, **edit)
    assert patch.rebuilds + patch.retunes == before + 1


def test_a_new_spec_on_a_probed_target_plans_once(mgr: ProbeManager) -> None:
    """Two specs applied together on one target plan it once."""
    publish(mgr, "a", value="result * 2")
    patch = the_patch()
    before = patch.rebuilds + patch.retunes
    mgr.specs["b"] = spec(value="amount")
    mgr.specs["c"] = spec(value="rate")
    mgr.apply_specs(["b", "c"])
    assert patch.rebuilds + patch.retunes == before + 1
    assert shop.price(1) == 2


def test_published_again_unchanged_only_moves_the_expiry(
    mgr: ProbeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same content with a new lastmodified (as coordinator publish sends it) is neither
    validated nor updated: its counters carry on, its expiry moves (the wrapper keeps the
    earlier deadline, and its code object), the status gets the new lastmodified."""
    first = publish(mgr, value="result * 2")
    for amount in range(3):
        shop.price(amount)
    inst = instrument(mgr)
    patch = the_patch()
    rebuilds, retunes, code = patch.rebuilds, patch.retunes, shop.price.__code__

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no validation nor update for a spec published again")

    monkeypatch.setattr(spec_module, "validate_spec", refused)
    monkeypatch.setattr(ProbeTestInstrument, "update", refused)
    again = publish(mgr, value="result * 2")
    assert (patch.rebuilds, patch.retunes) == (rebuilds, retunes + 1)
    assert instrument(mgr) is inst and inst.stats.fired == 3 and inst.results == [0, 4, 8]
    expires = again["lastmodified"] + dt.timedelta(minutes=10)
    assert inst.expires == expires and shop.price.__code__ is code
    assert (
        installed_deadline(patch) == (first["lastmodified"] + dt.timedelta(minutes=10)).timestamp()
    )
    assert mgr.specs["s"]["applied"][mgr.process_id] == {"lm": again["lastmodified"], "err": None}
    shop.price(5)
    assert inst.stats.fired == 4


def test_published_again_after_a_runtime_error_starts_afresh(mgr: ProbeManager) -> None:
    """An instrument stopped by its error is not merely moved: publishing it again clears
    the error and it fires again, as an edit does."""
    publish(mgr, value="result.no_such_attribute")
    assert shop.price(1) == 2
    assert error_of(mgr) is not None and "no_such_attribute" in (error_of(mgr) or "")
    publish(mgr, value="result.no_such_attribute")
    inst = instrument(mgr)
    assert inst.error is None and error_of(mgr) is None
    assert shop.price(1) == 2
    assert error_of(mgr) is not None and inst.stats.errors == 1


def test_an_edit_to_a_short_lifespan_expires_on_time(mgr: ProbeManager) -> None:
    """An edit swapping in a deadline half a second away: the probe stops firing then, and
    the target gets its own code back at its next call."""
    publish(mgr, value="result * 2")
    patch = the_patch()
    rebuilds = patch.rebuilds
    publish(mgr, value="result * 3", lifespan=0.5 / 60)
    assert patch.rebuilds == rebuilds
    original = patch.original
    assert wait_for(lambda: shop.price(1) == 2 and shop.price.__code__ is original, timeout=3)
    assert TARGET not in active_probes or not active_probes[TARGET].attached


def test_rate_limit_and_counters_work_after_a_fast_path_edit(mgr: ProbeManager) -> None:
    """An edit that keeps the plan resets the counters, and the rate limit counts what it
    drops."""
    publish(mgr, value="result * 2", rate=2)
    for amount in range(4):
        shop.price(amount)
    patch = the_patch()
    rebuilds = patch.rebuilds
    publish(mgr, value="result * 3", rate=2)
    assert patch.rebuilds == rebuilds
    for amount in range(10):
        assert shop.price(amount) == amount * 2
    assert mgr.counters()["s"] == {"fired": 2, "dropped": 8, "errors": 0}


def test_counters_of_some_specs_are_theirs(mgr: ProbeManager) -> None:
    """counters(spec_ids) gives what counters() gives for those specs, and nothing for an
    id that is not applied."""
    publish(mgr, "s", value="result * 2", rate=2)
    publish(mgr, "t", value="result * 4")
    for amount in range(5):
        shop.price(amount)
    every = mgr.counters()
    assert every["s"] == {"fired": 2, "dropped": 3, "errors": 0} and every["t"]["fired"] == 5
    assert mgr.counters(["t"]) == {"t": every["t"]}
    assert mgr.counters({"s", "nothing"}) == {"s": every["s"]}
    assert mgr.counters([]) == {}


def test_the_budget_disables_an_instrument_edited_on_the_fast_path(mgr: ProbeManager) -> None:
    """A slow expression swapped in by a fast-path edit is still timed, and disabled by its
    budget; the status says so."""
    publish(mgr, value="sum(range(10)) and result")
    patch = the_patch()
    rebuilds = patch.rebuilds
    publish(mgr, value="sum(range(100_000)) and result")
    assert patch.rebuilds == rebuilds
    inst = instrument(mgr)
    start = time.perf_counter()
    while time.perf_counter() - start < 10 and inst.error is None:
        assert shop.price(3) == 6
    assert inst.error is not None and "budget exceeded" in inst.error
    assert "budget exceeded" in (error_of(mgr) or "")


def helper(value: Any) -> Any:
    """An application's own function, callable from safe expressions once allowed."""
    return value


@pytest.fixture
def helper_mgr() -> Iterator[ProbeManager]:
    """A manager whose expressions may name helper (calling it is up to the policy)."""
    manager = ProbeManager("helper")
    manager.instrument_classes["test"] = ProbeTestInstrument
    manager.global_namespace = {**manager.global_namespace, "helper": helper}
    try:
        yield manager
    finally:
        manager.specs.clear()
        manager.apply()


def test_a_call_refused_fires_once_its_helper_is_allowed(helper_mgr: ProbeManager) -> None:
    """A call the policy refuses stops the instrument; allowed, the same text published
    again fires: nothing kept from before allow() stands in the way."""
    publish(helper_mgr, value="helper(result)")
    assert shop.price(2) == 4
    assert "ExpressionRefused" in (error_of(helper_mgr) or "")
    helper_mgr.allow(helper)
    publish(helper_mgr, value="helper(result)")
    assert shop.price(2) == 4
    assert error_of(helper_mgr) is None and instrument(helper_mgr).results[-1] == 4


def test_a_new_policy_governs_the_same_content_published_again(
    helper_mgr: ProbeManager,
) -> None:
    """A manager given a new policy (without the helper the old one allowed) compiles the
    same content published again with it: the fast path does not keep the old code."""
    helper_mgr.allow(helper)
    publish(helper_mgr, value="helper(result)")
    assert shop.price(2) == 4 and error_of(helper_mgr) is None
    helper_mgr.policy = Policy()
    publish(helper_mgr, value="helper(result)")
    assert shop.price(2) == 4
    assert "ExpressionRefused" in (error_of(helper_mgr) or "")


def test_what_trusted_passed_is_refused_once_safe(mgr: ProbeManager) -> None:
    """Switching the manager from trusted to safe checks every spec again, unchanged ones
    included."""
    mgr.expression_policy = "trusted"
    body = spec(value="getattr(result, 'real')")
    mgr.specs["s"] = body
    mgr.apply()
    assert error_of(mgr) is None
    mgr.expression_policy = "safe"
    mgr.apply()  # the same spec object, unchanged
    assert (error_of(mgr) or "").startswith("ExpressionRefused:")


def test_verdicts_are_kept_by_text_under_one_allowlist_generation() -> None:
    """A kept verdict (a refusal included) answers for the same text while the allowlist
    is the one it was reached under; after allow() the policy judges the text again."""
    judged: list[str] = []

    def judge(expr: str, filename: str, what: str) -> Any:
        judged.append(expr)
        if expr.startswith("bad"):
            raise diagnose.ExpressionRefused(f"{what} {expr!r} refused: bad")
        return compile(expr, filename, "eval")

    verdicts = Verdicts(judge, 4)
    for _ in range(2):
        with pytest.raises(diagnose.ExpressionRefused, match="refused: bad"):
            verdicts.code("bad", "value", 0)
        verdicts.code("1 + 1", "value", 0)
    assert judged == ["bad", "1 + 1"]
    with pytest.raises(diagnose.ExpressionRefused):
        verdicts.code("bad", "value", 1)  # another generation: judged again
    assert judged == ["bad", "1 + 1", "bad"]
    for i in range(10):
        verdicts.code(f"{i}", "value", 1)
    assert len(verdicts) == 4


def test_allow_moves_the_policy_generation_and_its_verdicts_stay_bounded() -> None:
    """allow() moves the generation the kept verdicts are checked against; however many
    texts it sees, a policy keeps VERDICTS of them."""
    policy = Policy()
    generation = policy.generation
    policy.allow(helper)
    assert policy.generation == generation + 1
    for i in range(VERDICTS + 50):
        policy.verify(f"result + {i}")
    assert len(policy._verdicts) == VERDICTS


def test_a_name_added_to_the_redaction_list_is_redacted_in_code_compiled_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kept code is not reused once the redaction list changed: a name added to it reads as
    <redacted> in what is compiled after."""
    policy = Policy()
    namespace = {"zeta": "visible"}
    assert eval(policy.compile("zeta", "<a>"), {}, namespace) == "visible"
    monkeypatch.setenv("DIAGNOSE_REDACT", "zeta")
    redaction.reload()
    try:
        assert eval(policy.compile("zeta", "<b>"), {}, namespace) is redaction.REDACTED
    finally:
        monkeypatch.delenv("DIAGNOSE_REDACT")
        redaction.reload()


def test_content_key_sees_content_not_objects() -> None:
    """Specs of equal content made of other objects (strings not interned, other dicts)
    get one key; lastmodified and applied do not count, the value does."""
    a = spec(value="result * 2", lastmodified=T0)
    b = spec(value="".join(["result", " * 2"]), lastmodified=T0 + dt.timedelta(hours=1))
    b["target"] = "".join(["probe_targets.", "shop.price"])
    b["applied"] = {"p": {"lm": T0, "err": None}}
    keep = [a["target"], a["instrument"]["value"]]  # more references to a's strings
    assert spec_module.content_key(a) == spec_module.content_key(b)
    assert spec_module.content_key(a) != spec_module.content_key(spec(value="result * 3"))
    c = spec(value="result * 2", lastmodified=T0)
    c["instrument"]["custom"] = {"when": T0}  # no marshal for a datetime: the general key
    assert spec_module.content_key(c) == spec_module.content_key(
        {**c, "instrument": {**c["instrument"], "custom": {"when": T0}}}
    )
    assert keep


def test_an_instrument_keeps_a_bounded_number_of_compiled_expressions(
    mgr: ProbeManager,
) -> None:
    """Going back to an expression it had finds it compiled; however many it had, it keeps
    at most KEPT."""
    publish(mgr, value="result * 2")
    inst = instrument(mgr)
    first = inst.compiled("result * 2")
    publish(mgr, value="result * 3")
    publish(mgr, value="result * 2")
    assert inst.compiled("result * 2") is first
    for i in range(KEPT + 5):
        publish(mgr, value=f"result + {i}")
    assert len(inst._codes) <= KEPT and len(inst._facts_of) <= KEPT
    assert shop.price(1) == 2 and inst.results[-1] == 2 + KEPT + 4


def test_the_deadline_slot_is_the_deadline_constant(mgr: ProbeManager) -> None:
    """The wrapper's constant at the patch's deadline slot is the plan's deadline (and the
    marker it replaced is nowhere in the code)."""
    publish(mgr, value="result * 2")
    patch = the_patch()
    assert installed_deadline(patch) == patch.plan.deadline  # type: ignore[union-attr]
    assert DEADLINE not in shop.price.__code__.co_consts


def test_what_a_plan_reads_follows_the_expressions(mgr: ProbeManager) -> None:
    """The names an instrument's expressions read and whether they nest scopes, as a plan
    asks for them at an edit (kept by the expressions' texts), follow each edit, a tags
    expression included, and agree with names() and nested_scopes(). (Generator
    expressions: list comprehensions have no scope of their own from Python 3.12.)"""
    publish(mgr, value="result * 2")
    inst = instrument(mgr)
    seen = []
    for value, tags in [
        ("result * 2", None),
        ("amount + 1", None),
        ("result * 2", None),
        ("result * 2", "{'n': sum(x for x in (amount,))}"),
        ("sum(y for y in (result,))", None),
    ]:
        inst.value = value
        inst.custom = {"tags": tags} if tags else {}
        reads = inst._plan_reads()
        assert reads == (inst.names(), inst.nested_scopes())
        names = reads[0] or frozenset()
        seen.append(("result" in names, "amount" in names, reads[1]))
    assert seen == [
        (True, False, False),
        (False, True, False),
        (True, False, False),
        (True, True, True),
        (True, False, True),
    ]
