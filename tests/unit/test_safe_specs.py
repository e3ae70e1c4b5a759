"""The expression policy and redaction, as they apply to specs through a manager."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest

import diagnose
from diagnose import LogInstrument, ProbeManager, ProbeTestInstrument, SpecError
from probe_targets import shop

TARGET = "probe_targets.shop.price"


@pytest.fixture
def mgr(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProbeManager]:
    monkeypatch.delenv("DIAGNOSE_EXPRESSIONS", raising=False)
    manager = ProbeManager(process_id="safe-test")
    manager.instrument_classes["test"] = ProbeTestInstrument
    yield manager
    manager.specs.clear()
    manager.apply()


def spec(value: str, type: str = "test", **custom: Any) -> dict[str, Any]:
    return {
        "target": TARGET,
        "instrument": {"type": type, "name": "s", "value": value, "custom": custom},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
        "applied": {},
    }


def status(mgr: ProbeManager, spec_id: str = "s") -> str | None:
    return mgr.specs[spec_id]["applied"][mgr.process_id]["err"]


def results(mgr: ProbeManager) -> list[Any]:
    return diagnose.probes.active_probes[TARGET].instruments[f"{mgr.short_id}:s"].results


@pytest.mark.parametrize(
    "value",
    [
        "open('/etc/passwd').read()",
        "eval('1')",
        "__import__('os')",
        "setattr(amount, 'real', 0)",
        "frame.f_back.f_globals",
        "(lambda: 1)()",
        "[x := 1]",
        "globals()",
    ],
)
def test_refused_at_apply_with_the_reason_in_the_status(mgr: ProbeManager, value: str) -> None:
    """What the AST can tell is refused at apply: the target is untouched."""
    original = shop.price.__code__
    mgr.specs["s"] = spec(value)
    mgr.apply()
    err = status(mgr)
    assert err is not None and err.startswith("ExpressionRefused:"), err
    assert shop.price.__code__ is original


@pytest.mark.parametrize(
    "value",
    ["time.sleep(5)", "kwargs.update(discount=100)", "[].append(1)", "math.__dict__"],
)
def test_refused_at_run_time_stops_the_instrument(mgr: ProbeManager, value: str) -> None:
    """What only the running values tell (the callee of a call) stops the instrument at
    its first call, with ExpressionRefused in the status; the target's result is its own."""
    mgr.specs["s"] = spec(value)
    mgr.apply()
    assert shop.price(3) == 6
    err = status(mgr)
    assert err is not None and "ExpressionRefused" in err, err


@pytest.mark.parametrize(
    "value, expected",
    [
        ("type(result).__name__", "int"),
        ("round(elapsed * 0, 1)", 0.0),
        ("max(amount, 10)", 10),
        ("sorted({'b': 1, 'a': amount}.items())", [("a", 3), ("b", 1)]),
        ("f'{result:.2f}'", "6.00"),
        ("frame.f_back.f_code.co_name", "call_price"),
        ("now.year > 2000", True),
        ("mag(result * 100)", 2),
    ],
)
def test_legitimate_expressions_give_their_values(
    mgr: ProbeManager, value: str, expected: Any
) -> None:
    """A legitimate expression in a spec applies without error and gives its value."""
    mgr.specs["s"] = spec(value)
    mgr.apply()

    def call_price() -> int:
        return shop.price(3)

    assert call_price() == 6
    assert status(mgr) is None
    assert results(mgr) == [expected]


def test_allow_lets_an_applications_helper_in(mgr: ProbeManager) -> None:
    """A helper in global_namespace is refused until manager.allow() lets it in."""

    def double(x: int) -> int:
        return 2 * x

    mgr.global_namespace["double"] = double
    mgr.specs["s"] = spec("double(result)")
    mgr.apply()
    shop.price(3)
    assert "ExpressionRefused" in (status(mgr) or "")
    mgr.allow(double)
    mgr.specs["s"] = spec("double(result) + 0")
    mgr.apply()
    shop.price(3)
    assert status(mgr) is None and results(mgr)[-1] == 12


def test_trusted_policy_runs_what_safe_refuses(
    mgr: ProbeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DIAGNOSE_EXPRESSIONS=trusted (or expression_policy) lifts the policy, not redaction."""
    monkeypatch.setenv("DIAGNOSE_EXPRESSIONS", "trusted")
    trusted = ProbeManager(process_id="trusted")
    trusted.instrument_classes["test"] = ProbeTestInstrument
    assert trusted.expression_policy == "trusted"
    trusted.specs["s"] = spec("(type(amount).__mro__[0].__name__, {'token': 1})")
    try:
        trusted.apply()
        shop.price(3)
        assert status(trusted) is None
        assert results(trusted) == [("int", {"token": diagnose._output.redaction.REDACTED})]
    finally:
        trusted.specs.clear()
        trusted.apply()
    with pytest.raises(ValueError):
        mgr.expression_policy = "loose"


def test_the_default_spec_check_is_the_safe_one() -> None:
    """validate_spec (and so coordinator publish) refuses what the safe policy can tell."""
    with pytest.raises(SpecError, match="refused"):
        diagnose.validate_spec(spec("open('x')"))


def test_instruments_made_in_code_are_not_restricted() -> None:
    """An instrument made in code is the programmer's own: the policy does not restrict it."""
    with diagnose.sensor(TARGET, "type(amount).__mro__[0].__name__") as s:
        shop.price(1)
    assert s.results == ["int"]


def test_secrets_are_redacted_in_log_lines(
    mgr: ProbeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret-named variable, attribute or dict key is <redacted> in the line and tags."""
    out = io.StringIO()
    monkeypatch.setattr(LogInstrument, "out", out)

    class User:
        api_key = "sk-live-1"
        name = "ada"

    mgr.global_namespace["user"] = User()
    mgr.specs["s"] = spec(
        "{'who': user.name, 'key': user.api_key, 'nested': [{'Password': 'p'}], 'n': amount}",
        type="log",
        tags="{'session_id': 'abc', 'kind': 'x'}",
    )
    mgr.apply()
    shop.price(3)
    line = out.getvalue()
    assert "sk-live" not in line and "'p'" not in line and "abc" not in line
    assert "'key': <redacted>" in line and "'Password': <redacted>" in line
    assert "'session_id': <redacted>" in line and "'n': 3" in line


def test_a_bare_secret_name_is_never_read(mgr: ProbeManager) -> None:
    """``password`` as the whole value gives <redacted>, even by the no-eval shortcut."""
    mgr.global_namespace["password"] = "hunter2"
    mgr.specs["s"] = spec("password")
    mgr.apply()
    shop.price(1)
    assert results(mgr) == [diagnose._output.redaction.REDACTED]
