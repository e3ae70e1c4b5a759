"""Instrument expressions: parsing, the policy, the names they read, and the compile cache.

Every expression of an instrument (its ``value`` and ``custom["tags"]``) goes through
this module: the spec validation checks it against the expression policy, the
instrument compiles it (once: code objects are immutable and shared through an LRU
cache), and the plan asks which names it reads, so that a wrapper builds only those.
"""

from __future__ import annotations

import ast
import functools
import types
from collections.abc import Iterable
from typing import Any

from .exceptions import ExpressionRefused

__all__ = (
    "MAX_EXPRESSION_CHARS",
    "WHOLE_NAMESPACE",
    "check_expression",
    "compile_eval",
    "compile_expression",
    "has_nested_scope",
    "names_read",
)

MAX_EXPRESSION_CHARS = 4096
# Builtins that read every name of the namespace they run in.
WHOLE_NAMESPACE = frozenset({"locals", "vars", "dir"})


def check_expression(expr: object, what: str = "value") -> ast.Expression:
    """Parse an instrument expression and apply the expression policy to it.

    The policy refuses what could escape the probe or change the target's state:
    dunder names and attributes (``__class__``, ``__import__``...), assignment
    expressions, and expressions longer than MAX_EXPRESSION_CHARS.
    """
    if not isinstance(expr, str):
        raise ExpressionRefused(f"{what} must be a string expression, not {type(expr).__name__}")
    if not expr.strip():
        raise ExpressionRefused(f"{what} is empty")
    if len(expr) > MAX_EXPRESSION_CHARS:
        raise ExpressionRefused(f"{what} is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionRefused(f"{what} {expr!r} does not compile: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.NamedExpr):
            raise ExpressionRefused(f"{what} {expr!r} refused: assignment expressions (:=)")
        name = None
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.keyword):
            name = node.arg
        if name is not None and name.startswith("__"):
            raise ExpressionRefused(f"{what} {expr!r} refused: dunder name {name!r}")
    return tree


@functools.lru_cache(maxsize=256)
def compile_eval(expr: str, filename: str) -> Any:
    """Compile an expression for eval(), once: code objects are immutable, so an instrument
    shares the code its spec's validation compiled (under the instrument's filename)."""
    return compile(expr.strip(), filename, "eval")


def compile_expression(expr: object, what: str = "value", filename: str | None = None) -> Any:
    """Check an expression against the policy and compile it for eval()."""
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
