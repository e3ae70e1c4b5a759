"""Where a safe expression's guards go: the rewriter that routes calls, size-changing
operators, iterations and format specs through the policy's guards, and the decisions it
takes, which the policy also uses to skip a pass that would change nothing.

Invariant: ``rewritten(node)`` is True exactly where ``Rewriter`` puts a guard (its children
as they are), so a tree none of whose nodes is rewritten compiles as it was parsed.
"""

from __future__ import annotations

import ast
import re
import types
from collections.abc import Callable
from typing import Any

from diagnose._output import redaction
from diagnose._safety import meter, operators, redacted_reads

__all__ = (
    "BINOPS",
    "P_BEGIN",
    "P_CALL",
    "P_CALLS",
    "P_FORMAT",
    "P_IN",
    "P_ITER",
    "P_LOOP",
    "Rewriter",
    "constant_spec",
    "mark_genexprs",
    "names_secret",
    "rewritten",
)

# The placeholders the rewritten tree calls, and the functions they become.
_P = redacted_reads.PLACEHOLDER_PREFIX
P_CALL = _P + "call"
P_CALLS = tuple(f"{_P}call{n}" for n in range(4))  # calls of 0 to 3 positional arguments
P_BEGIN = _P + "begin"
P_ITER = _P + "iter"
P_LOOP = _P + "loop"
P_FORMAT = _P + "format"
P_IN = _P + "in"
BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Mult: (_P + "mul", operators.mul),
    ast.Pow: (_P + "pow", operators.power),
    ast.LShift: (_P + "lshift", operators.lshift),
    ast.Add: (_P + "add", operators.add),
    ast.Mod: (_P + "mod", operators.mod),
}


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, complex)


def constant_spec(spec: ast.AST | None) -> str | None:
    """Return an f-string format spec's text when it is constant, else None."""
    if spec is None:
        return ""
    if isinstance(spec, ast.JoinedStr) and all(
        isinstance(v, ast.Constant) and isinstance(v.value, str) for v in spec.values
    ):
        return "".join(v.value for v in spec.values)  # type: ignore[attr-defined]
    return None


# An operation whose size is only known from its operands is left unguarded only when its
# constants make it small: a 1 MiB constant format width, or 10**5000, is allowed once,
# but in a comprehension it would be built at every turn, so it must charge the meter.


def _small_percent(fmt: str) -> bool:
    if "*" in fmt:
        return False
    return sum(int(n) for n in re.findall(r"\d+", fmt) if len(n) < 10) <= meter.SMALL


def _small_spec(spec: str) -> bool:
    return sum(int(n) for n in re.findall(r"\d+", spec) if len(n) < 10) <= meter.SMALL


def _small_number_op(node: ast.BinOp) -> bool:
    """True when a binary operation of two number constants gives a small number."""
    left, right = node.left.value, node.right.value  # type: ignore[attr-defined]
    if isinstance(node.op, ast.Add | ast.Mod):
        return True
    if type(left) is not int or type(right) is not int:
        return True  # float and complex results are 64 or 128 bits
    if isinstance(node.op, ast.Pow):
        bits = operators.int_power_bits(left, right)
    elif isinstance(node.op, ast.LShift):
        bits = left.bit_length() + max(right, 0)
    else:
        bits = left.bit_length() + right.bit_length()
    return bits <= 128


class Rewriter(ast.NodeTransformer):
    """Route calls, size-changing operators, iterations and format specs through guards."""

    def __init__(self) -> None:
        self.guarded = False

    def placeholder(self, name: str, node: ast.AST, args: list[ast.expr]) -> ast.Call:
        self.guarded = True
        return ast.copy_location(ast.Call(func=ast.Constant(name), args=args, keywords=[]), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Constant) and node.func.value == redacted_reads.PLACEHOLDER:
            return node  # a secret read, put there by redact_tree
        simple = not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)
        if simple and len(node.args) < len(P_CALLS):
            return self.placeholder(P_CALLS[len(node.args)], node, [node.func, *node.args])
        call = self.placeholder(P_CALL, node, [node.func, *node.args])
        call.keywords = node.keywords
        return call

    def visit_Starred(self, node: ast.Starred) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load):
            node.value = self.placeholder(P_ITER, node.value, [node.value])
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        self.generic_visit(node)
        node.iter = self.placeholder(P_LOOP, node.iter, [node.iter])
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guard = _binop_guard(node)
        if guard is None:
            return node
        return self.placeholder(guard, node, [node.left, node.right])

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if not _guarded_compare(node):
            return node
        test = self.placeholder(P_IN, node, [node.left, node.comparators[0]])
        if isinstance(node.ops[0], ast.NotIn):
            return ast.copy_location(ast.UnaryOp(op=ast.Not(), operand=test), node)
        return test

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        self.generic_visit(node)
        if not _guarded_format(node):
            return node
        assert node.format_spec is not None
        value = self.placeholder(
            P_FORMAT, node, [node.value, ast.Constant(node.conversion), node.format_spec]
        )
        return ast.copy_location(ast.FormattedValue(value=value, conversion=-1), node)


def _binop_guard(node: ast.BinOp) -> str | None:
    """Return the placeholder of the guard a binary operation goes through, or None."""
    guard = BINOPS.get(type(node.op))
    if guard is None:
        return None
    left, right = node.left, node.right
    if isinstance(node.op, ast.Add) and (_is_number(left) or _is_number(right)):
        return None  # a number plus anything cannot grow a sequence
    if isinstance(node.op, ast.Mult) and any(
        isinstance(side, ast.Constant) and type(side.value) in (float, complex)
        for side in (left, right)
    ):
        return None
    if (
        isinstance(node.op, ast.Mod)
        and isinstance(left, ast.Constant)
        and isinstance(left.value, str)
        and _small_percent(left.value)
        and "%(" not in left.value
    ):
        return None  # a constant format whose widths are small (no '*', no names)
    if _is_number(left) and _is_number(right) and _small_number_op(node):
        return None  # the compiler folds it
    return guard[0]


def _guarded_compare(node: ast.Compare) -> bool:
    # `x in it` iterates `it` when it has no __contains__: an iterator of the target's
    # would be consumed, an endless one would never return. (A chain such as
    # `a < b in c` is left as it is.)
    return len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn)


def _guarded_format(node: ast.FormattedValue) -> bool:
    spec = constant_spec(node.format_spec)
    return not (spec is not None and _small_spec(spec))  # small constant widths: no charge


def rewritten(node: ast.AST) -> bool:
    """Tell whether _Rewriter puts a guard at node, its children unchanged (so a tree none
    of whose nodes is rewritten is left as it is)."""
    if isinstance(node, ast.BinOp):
        return _binop_guard(node) is not None
    if isinstance(node, ast.Compare):
        return _guarded_compare(node)
    if isinstance(node, ast.FormattedValue):
        return _guarded_format(node)
    if isinstance(node, ast.Starred):
        return isinstance(node.ctx, ast.Load)
    return isinstance(node, ast.Call | ast.comprehension)


def mark_genexprs(code: types.CodeType) -> types.CodeType:
    """Rename the generator expressions' code objects, so counted() knows them as ours."""
    consts = tuple(mark_genexprs(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    if code.co_name == "<genexpr>":
        return code.replace(co_consts=consts, co_name=meter.GENEXPR_NAME)
    return code.replace(co_consts=consts)


def names_secret(node: ast.AST) -> bool:
    """Tell whether node names a secret: redact_tree changes nothing in a tree without."""
    if isinstance(node, ast.Name):
        return redaction.is_secret(node.id)
    if isinstance(node, ast.Attribute):
        return redaction.is_secret(node.attr)
    if isinstance(node, ast.keyword):
        return redaction.is_secret(node.arg)
    return isinstance(node, ast.Constant) and redaction.is_secret(node.value)
