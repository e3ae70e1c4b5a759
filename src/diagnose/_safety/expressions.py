"""Instrument expressions: which policy applies, checking, compiling, the names they read.

A spec's expressions go through its manager's policy: ``safe`` (the allowlist and guards)
or ``trusted`` (no policy, secrets still redacted); an instrument made in code compiles
plainly.
"""

from __future__ import annotations

import ast
import functools
import os
import types
from collections.abc import Iterable
from typing import Any

from diagnose._safety.policy import MAX_EXPRESSION_CHARS, Policy
from diagnose._safety.redacted_reads import compile_redacted
from diagnose.exceptions import ExpressionRefused

__all__ = (
    "MAX_EXPRESSION_CHARS",
    "POLICIES",
    "WHOLE_NAMESPACE",
    "Policy",
    "check_expression",
    "compile_eval",
    "compile_expression",
    "compile_trusted",
    "default_policy",
    "has_nested_scope",
    "names_read",
    "policy_from_env",
)

# Builtins that read every name of the namespace they run in.
WHOLE_NAMESPACE = frozenset({"locals", "vars", "dir"})


POLICIES = ("safe", "trusted")


def policy_from_env(environ: Any = None) -> str:
    """Return the expression policy DIAGNOSE_EXPRESSIONS names ("safe" when unset)."""
    value = (os.environ if environ is None else environ).get("DIAGNOSE_EXPRESSIONS", "safe")
    value = value.strip().lower() or "safe"
    if value not in POLICIES:
        raise ValueError(f"DIAGNOSE_EXPRESSIONS must be safe or trusted, not {value!r}")
    return value


@functools.lru_cache(maxsize=1)
def _static_policy() -> Policy:
    return Policy()


def default_policy() -> Policy | None:
    """Return the policy that checks specs in this process by default: the safe one (its
    static rules), or None when DIAGNOSE_EXPRESSIONS=trusted."""
    try:
        trusted = policy_from_env() == "trusted"
    except ValueError:
        trusted = False  # a typo never loosens the policy
    return None if trusted else _static_policy()


def check_expression(expr: object, what: str = "value", policy: Any = None) -> None:
    """Check an instrument expression: that it is a string that parses, not too long, and,
    with a policy, that the policy's static rules allow it (its verdict kept by text, see
    Policy.verify). Raise ExpressionRefused."""
    if policy is not None:
        policy.verify(expr, what)
        return
    if not isinstance(expr, str):
        raise ExpressionRefused(f"{what} must be a string expression, not {type(expr).__name__}")
    if not expr.strip():
        raise ExpressionRefused(f"{what} is empty")
    if len(expr) > MAX_EXPRESSION_CHARS:
        raise ExpressionRefused(f"{what} is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionRefused(f"{what} {expr!r} does not compile: {exc.msg}") from None


@functools.lru_cache(maxsize=256)
def compile_eval(expr: str, filename: str) -> Any:
    """Compile an expression for eval(), once (the instruments made in code: no policy)."""
    return compile(expr.strip(), filename, "eval")


@functools.lru_cache(maxsize=256)
def compile_trusted(expr: str, filename: str) -> Any:
    """Compile a trusted spec's expression: no policy, but secrets are never read."""
    try:
        return compile_redacted(expr, filename)
    except (SyntaxError, ValueError) as exc:
        raise ExpressionRefused(f"{expr!r} does not compile: {exc}") from None


def compile_expression(expr: object, what: str = "value", filename: str | None = None) -> Any:
    """Check an expression (syntax only) and compile it for eval()."""
    check_expression(expr, what)
    assert isinstance(expr, str)
    try:
        return compile_eval(expr, filename or f"<diagnose {what}>")
    except (SyntaxError, ValueError) as exc:
        raise ExpressionRefused(f"{what} {expr!r} does not compile: {exc}") from None


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names) | set(code.co_varnames)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def names_read(codes: Iterable[types.CodeType], extra: Iterable[str] = ()) -> set[str] | None:
    """Return the names compiled expressions (and ``extra``) read, or None when one of them
    may read any name (``locals()`` and friends)."""
    names = set(extra)
    for code in codes:
        names |= _names_in(code)
    if names & WHOLE_NAMESPACE:
        return None
    return names


def has_nested_scope(codes: Iterable[types.CodeType]) -> bool:
    """Return True when a compiled expression holds a lambda or comprehension.

    Their bodies look names up in the globals only, so such an expression is evaluated
    with everything merged into one globals dict (slower, but right).
    """
    return any(isinstance(c, types.CodeType) for code in codes for c in code.co_consts)
