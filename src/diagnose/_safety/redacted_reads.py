"""Compile expressions that never read a secret: a read of a secret-named name, attribute,
constant key or keyword becomes REDACTED before compiling, so the secret is never read."""

from __future__ import annotations

import ast
import secrets
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from diagnose._output.redaction import REDACTED, is_secret

__all__ = (
    "PLACEHOLDER",
    "PLACEHOLDER_MARK",
    "PLACEHOLDER_PREFIX",
    "REDACTION_CONSTANTS",
    "bind_placeholders",
    "compile_quietly",
    "compile_redacted",
    "redact_tree",
)


# Where redact_tree puts a secret, it puts a call of this string constant (a call, so that
# the compiler cannot fold it into a neighbouring constant); bind_placeholders() swaps it
# for a function returning REDACTED in the compiled code. The policy's guards use the
# same prefix. It holds a random part, so that no expression can spell a placeholder (not
# even by letting the compiler fold 'a' + 'b' into one), and the policy refuses any
# string constant holding the prefix's fixed part.
PLACEHOLDER_MARK = "\x00diagnose:"
PLACEHOLDER_PREFIX = f"{PLACEHOLDER_MARK}{secrets.token_hex(8)}:"
PLACEHOLDER = PLACEHOLDER_PREFIX + "redacted"


def _redacted() -> Any:
    return REDACTED


def _secret_read(node: ast.AST) -> ast.expr:
    return ast.copy_location(ast.Call(func=ast.Constant(PLACEHOLDER), args=[], keywords=[]), node)


def _secret_key(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and is_secret(node.value)


class _Redactor(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and is_secret(node.id):
            return _secret_read(node)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and is_secret(node.attr):
            return _secret_read(node)
        return self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and _secret_key(node.slice):
            return _secret_read(node)
        return self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.generic_visit(node)
        node.values = [
            _secret_read(value) if _secret_key(key) else value
            for key, value in zip(node.keys, node.values, strict=True)
        ]
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        # x.get('password'), x.get('password', default): a mapping read by its key.
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and node.args
            and _secret_key(node.args[0])
        ):
            return _secret_read(node)
        self.generic_visit(node)
        # dict(password=p): the keyword names the entry.
        for keyword in node.keywords:
            if keyword.arg is not None and is_secret(keyword.arg):
                keyword.value = _secret_read(keyword.value)
        return node


def redact_tree(tree: ast.AST) -> ast.AST:
    """Replace, in place, every read of a secret-named value by a placeholder; return tree.

    Compile the result with ``compile_redacted`` (or compile it and pass the code to
    ``bind_placeholders``) so that the placeholders become REDACTED.
    """
    result = _Redactor().visit(tree)
    ast.fix_missing_locations(result)
    return result


def bind_placeholders(code: types.CodeType, values: Mapping[str, Any]) -> types.CodeType:
    """Return code with every string constant that is a key of values replaced by its value,
    in nested code objects (comprehensions) and constant tuples and frozensets too."""

    def swap(const: Any) -> Any:
        if type(const) is str:
            return values.get(const, const)
        if isinstance(const, types.CodeType):
            return bind_placeholders(const, values)
        if type(const) is tuple:
            return tuple(swap(c) for c in const)
        if type(const) is frozenset:
            return frozenset(swap(c) for c in const)
        return const

    consts = tuple(swap(c) for c in code.co_consts)
    if all(a is b for a, b in zip(consts, code.co_consts, strict=True)):
        return code
    return code.replace(co_consts=consts)


def compile_quietly(tree: ast.Expression, filename: str) -> types.CodeType:
    """compile() without the SyntaxWarning a call of a string constant (a placeholder) gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return compile(tree, filename, "eval")


REDACTION_CONSTANTS: dict[str, Callable[[], Any]] = {PLACEHOLDER: _redacted}


def compile_redacted(expr: str | ast.Expression, filename: str = "<redacted>") -> types.CodeType:
    """Compile an expression for eval() with its secret reads replaced by REDACTED.

    This applies no other policy: the expression policy's compile does this and more.
    """
    tree = ast.parse(expr.strip(), mode="eval") if isinstance(expr, str) else expr
    redacted = redact_tree(tree)
    assert isinstance(redacted, ast.Expression)
    return bind_placeholders(compile_quietly(redacted, filename), REDACTION_CONSTANTS)
