"""The safe expression policy: an allowlist decided from the AST where it can be, and by
guards compiled into the code object where only the running values can tell.

Invariant: a safe expression reads no namespace but its event's and ``global_namespace``,
calls only what the allowlist holds, and every guard is a constant of its code object, so
no name of a namespace can stand in for one. Design: docs/architecture.md.
"""

from __future__ import annotations

import ast
import builtins
import types
import warnings
from collections.abc import Callable
from typing import Any

from diagnose._output import redaction
from diagnose._safety import allowlist, guarded, meter, operators, redacted_reads
from diagnose._safety.rewrite import (
    BINOPS,
    P_BEGIN,
    P_CALL,
    P_CALLS,
    P_FORMAT,
    P_IN,
    P_ITER,
    P_LOOP,
    Rewriter,
    constant_spec,
    mark_genexprs,
    names_secret,
    rewritten,
)
from diagnose._safety.verdicts import FILENAME, Memo, Verdicts, renamed
from diagnose.exceptions import ExpressionRefused

__all__ = ("MAX_DEPTH", "MAX_EXPRESSION_CHARS", "Policy")

MAX_EXPRESSION_CHARS = 4096
MAX_DEPTH = 100
#: How many compiled expressions a policy keeps (the least recently used go first), and
#: how many verdicts by expression text.
COMPILED_CACHE = 256
VERDICTS = 256

_ALLOWED_NODES = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Store, ast.Attribute,
    ast.Subscript, ast.Slice, ast.Starred, ast.List, ast.Tuple, ast.Set, ast.Dict,
    ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.keyword,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension,
    ast.JoinedStr, ast.FormattedValue,
    ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip
_ALLOWED_DUNDERS = frozenset({"__name__", "__qualname__", "__module__"})
# Allowed nodes with nothing in them to check, fold or rewrite (contexts and operators).
_LEAVES = frozenset(
    {ast.Load, ast.Store}
    | {
        kind
        for base in (ast.operator, ast.unaryop, ast.boolop, ast.cmpop)
        for kind in base.__subclasses__()
    }
)
_REFUSED_ATTRIBUTES = redaction.words(
    """f_globals f_locals f_builtins f_trace f_trace_lines f_trace_opcodes gi_frame
    cr_frame ag_frame tb_frame func_globals func_closure func_code func_dict im_func
    im_self im_class environ modules"""
)
# Builtins never allowed: refused when called by name, so that publish can say so.
_REFUSED_CALLS = redaction.words(
    """open eval exec compile getattr setattr delattr hasattr globals locals vars input
    breakpoint help exit quit print iter next aiter anext super object classmethod
    staticmethod property memoryview bytearray map filter copyright credits license"""
)

_PLAINBINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Sub: lambda a, b: a - b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.RShift: lambda a, b: a >> b,
    ast.BitAnd: lambda a, b: a & b,
    ast.BitOr: lambda a, b: a | b,
    ast.BitXor: lambda a, b: a ^ b,
}
# Builtins whose constant calls check() evaluates, to refuse their bombs at apply.
_FOLDED_CALLS = redaction.words(
    "range bytes str list tuple set sum len pow format max min sorted any all"
)
_UNKNOWN: Any = object()


def _refused(what: str, expr: str, reason: str) -> ExpressionRefused:
    shown = expr if len(expr) <= 200 else expr[:197] + "..."
    return ExpressionRefused(f"{what} {shown!r} refused: {reason}")


def _children(node: ast.AST) -> list[ast.AST]:
    """Return node's children in ast.iter_child_nodes' order (without its generators)."""
    children: list[ast.AST] = []
    for field in node._fields:
        value = getattr(node, field, None)
        if isinstance(value, ast.AST):
            children.append(value)
        elif isinstance(value, list):
            children += [item for item in value if isinstance(item, ast.AST)]
    return children


def _nodes(tree: ast.AST) -> tuple[list[ast.AST], dict[int, list[ast.AST]]] | None:
    """Return every node of tree in ast.walk's order (breadth first) and each node's
    children by id, or None when the tree nests more than MAX_DEPTH levels deep (the walk
    stops there)."""
    nodes = [tree]
    depths = [1]
    kids: dict[int, list[ast.AST]] = {}
    i = 0
    while i < len(nodes):
        node = nodes[i]
        depth = depths[i] + 1
        i += 1
        if type(node) in _LEAVES:
            continue  # nothing inside
        children = kids[id(node)] = _children(node)
        if children:
            if depth > MAX_DEPTH:
                return None
            nodes += children
            depths += [depth] * len(children)
    return nodes, kids


class _Quiet(warnings.catch_warnings):  # type: ignore[type-arg]
    """A block in which parsing and compiling an expression warns nothing: an invalid
    escape or a call of a constant (a placeholder) is not for the target's stderr."""

    def __enter__(self) -> None:
        super().__enter__()
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)


def _name_refused(name: str) -> bool:
    return name.startswith("_") and name != "_" and name not in _ALLOWED_DUNDERS


class Policy:
    """The safe expression policy, with its own allowlist.

    ``check(expr)`` applies the static rules and returns the tree; ``compile(expr,
    filename)`` returns a code object for ``eval(code, globals, locals)`` that guards
    itself; ``allow(callable)`` lets expressions compiled by this policy call callable
    (a function, a builtin, a class, or an unbound method: allowing a function also
    allows it bound as a method). Thread-safe once built: compiled code only reads the
    allowlist, and allow() changes it with single dict operations.

    Verdicts are kept by expression text (``verify``), each with the allowlist's
    ``generation`` and the redaction list it was reached under: allow() moves the
    generation, so a kept refusal is never reused once the allowlist changed (and a kept
    acceptance never outlives the rules it passed).
    """

    def __init__(self) -> None:
        self._table = allowlist.default_allowlist()
        #: moves with every allow(): verdicts reached before are not reused
        self.generation = 0
        self._verdicts = Verdicts(self._compile, VERDICTS)
        # (expr, filename) -> code. Least recently used first: a full memo stays full (one
        # entry in, one out), so its memory is the same after a thousand distinct specs as
        # after ten thousand.
        self._compiled = Memo(COMPILED_CACHE)
        guards = allowlist.make_call_guards(self._table)
        self._call, self._forget = guards.call, guards.forget
        self._constants: dict[str, Any] = {
            **redacted_reads.REDACTION_CONSTANTS,
            **dict(zip(P_CALLS, guards.by_arity, strict=True)),
            P_CALL: self._call,
            P_BEGIN: meter.begin,
            P_ITER: meter.counted,
            P_LOOP: meter.looped,
            P_FORMAT: guarded.format_value,
            P_IN: operators.contains,
            **{name: function for name, function in BINOPS.values()},
        }

    def allow(self, function: Callable[..., Any]) -> None:
        """Let expressions call function (it runs unguarded: it is the application's own).
        A bound method allows its function, for every instance."""
        if isinstance(function, types.MethodType):
            function = function.__func__
        if not callable(function):
            raise TypeError(f"allow() takes a callable, not {type(function).__name__}")
        self._table[id(function)] = (function, meter.keeping_meter(function))
        self._forget()
        self.generation += 1

    def allowed_names(self) -> list[str]:
        """Return the names of the callables allowed, sorted (for the README or a CLI)."""
        return sorted({allowlist.describe(entry[0]) for entry in self._table.values()})

    def call(self, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call function as a safe expression would: refused unless it is allowed."""
        return self._call(function, *args, **kwargs)

    # --- static checks ---------------------------------------------------------------

    def check(self, expr: object, what: str = "value") -> ast.Expression:
        """Parse expr and apply the static rules; raise ExpressionRefused saying why."""
        with _Quiet():
            return self._check(expr, what)[0]

    def _check(self, expr: object, what: str) -> tuple[ast.Expression, list[ast.AST]]:
        """check(), warnings not silenced (the caller does); return the tree and its
        nodes."""
        if not isinstance(expr, str):
            raise ExpressionRefused(
                f"{what} must be a string expression, not {type(expr).__name__}"
            )
        if not expr.strip():
            raise ExpressionRefused(f"{what} is empty")
        if len(expr) > MAX_EXPRESSION_CHARS:
            raise ExpressionRefused(f"{what} is longer than {MAX_EXPRESSION_CHARS} characters")
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionRefused(f"{what} {expr!r} does not compile: {exc.msg}") from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise _refused(what, expr, f"does not parse ({type(exc).__name__})") from None
        walked = _nodes(tree)
        if walked is None:
            raise _refused(what, expr, f"nested more than {MAX_DEPTH} levels deep")
        nodes, kids = walked
        for node in nodes:
            if type(node) in _LEAVES:
                continue
            reason = self._node_reason(node)
            if reason:
                raise _refused(what, expr, reason)
        meter.begin(list(meter.FRESH_METER))
        try:
            self._fold(tree.body, kids)
        except ExpressionRefused as exc:
            reason = str(exc).removeprefix("refused at run time: ")
            raise _refused(what, expr, reason) from None
        finally:
            meter.begin(list(meter.FRESH_METER))
        return tree, nodes

    def _node_reason(self, node: ast.AST) -> str | None:
        if not isinstance(node, _ALLOWED_NODES):
            return f"{_node_name(node)} is not allowed in a safe expression"
        if isinstance(node, ast.Name) and _name_refused(node.id):
            return f"the name {node.id!r} starts with '_'"
        if isinstance(node, ast.Attribute):
            if _name_refused(node.attr):
                return f"the attribute {node.attr!r} starts with '_'"
            if node.attr in _REFUSED_ATTRIBUTES:
                return f"the attribute {node.attr!r} reaches globals, builtins or secrets"
        if isinstance(node, ast.keyword) and node.arg is not None and _name_refused(node.arg):
            return f"the keyword {node.arg!r} starts with '_'"
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if redacted_reads.PLACEHOLDER_MARK in text:
                return "a string constant holds a NUL-prefixed diagnose marker"
        if isinstance(node, ast.comprehension):
            if node.is_async:
                return "async comprehensions are not allowed"
            for target in ast.walk(node.target):
                if isinstance(target, ast.Attribute | ast.Subscript):
                    return "a comprehension may only bind names, not store into an object"
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _REFUSED_CALLS
        ):
            return f"call of {node.func.id} is not allowed in a safe expression"
        try:
            if isinstance(node, ast.FormattedValue):
                meter.begin(list(meter.FRESH_METER))
                guarded.check_spec(constant_spec(node.format_spec))
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Mod)
                and isinstance(node.left, ast.Constant)
                and isinstance(node.left.value, str)
                and "*" not in node.left.value
            ):
                meter.begin(list(meter.FRESH_METER))
                operators.check_percent(node.left.value, ())
        except ExpressionRefused as exc:
            return str(exc).removeprefix("refused at run time: ")
        return None

    def _fold(self, node: ast.AST, kids: dict[int, list[ast.AST]]) -> Any:
        """Evaluate node if it is constant, through the guards; _UNKNOWN if it is not
        (kids: each node's children, by id).

        Visits every sub-expression, so that a constant bomb anywhere is found."""
        children = []
        for child in kids.get(id(node), ()):
            if isinstance(child, ast.expr):
                children.append(self._fold(child, kids))
            else:  # a comprehension's or a keyword's expressions
                for grandchild in kids.get(id(child), ()):
                    if isinstance(grandchild, ast.expr):
                        self._fold(grandchild, kids)
        try:
            return self._fold_node(node, children)
        except ExpressionRefused:
            raise
        except Exception:
            return _UNKNOWN

    def _fold_node(self, node: ast.AST, children: list[Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Call):
            args = children[1:]
            if (
                node.keywords
                or _UNKNOWN in args
                or any(isinstance(a, ast.Starred) for a in node.args)
            ):
                return _UNKNOWN
            if isinstance(node.func, ast.Name) and node.func.id in _FOLDED_CALLS:
                return self._call(getattr(builtins, node.func.id), *args)
            if children[0] is not _UNKNOWN:  # a method of a constant str or bytes
                return self._call(children[0], *args)
            return _UNKNOWN
        if _UNKNOWN in children:
            return _UNKNOWN
        if isinstance(node, ast.Attribute):
            owner = children[0]
            return getattr(owner, node.attr) if type(owner) in (str, bytes) else _UNKNOWN
        if isinstance(node, ast.BinOp):
            left, right = children
            guard = BINOPS.get(type(node.op))
            if guard is not None:
                return guard[1](left, right)
            plain = _PLAINBINOPS.get(type(node.op))
            return _UNKNOWN if plain is None else plain(left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            return -children[0] if isinstance(node.op, ast.USub) else +children[0]
        if isinstance(node, ast.Tuple | ast.List) and len(children) <= 100:
            if any(isinstance(e, ast.Starred) for e in node.elts):
                return _UNKNOWN
            return tuple(children) if isinstance(node, ast.Tuple) else list(children)
        return _UNKNOWN

    # --- compiling -------------------------------------------------------------------

    def verify(self, expr: object, what: str = "value") -> None:
        """Apply the static rules as check() does, the verdict kept by text (see the class
        docstring); raise ExpressionRefused saying why."""
        self._checked_code(expr, what)

    def compile(self, expr: object, filename: str, what: str = "value") -> types.CodeType:
        """Check expr, rewrite it with its guards and redaction, and compile it for eval().

        The code is cached per (expr, filename): it reads the allowlist when it runs, so
        it stays right after allow(); a refusal is not cached here (see verify)."""
        key = (expr, filename) if isinstance(expr, str) else None
        code = self._compiled.get(key) if key is not None else None
        if code is None:
            code = renamed(self._checked_code(expr, what), filename)
            if key is not None:
                self._compiled.put(key, code)
        return code

    def _checked_code(self, expr: object, what: str) -> types.CodeType:
        if not isinstance(expr, str):
            return self._compile(expr, FILENAME, what)  # raises: not a string
        return self._verdicts.code(expr, what, self.generation)

    def _compile(self, expr: object, filename: str, what: str) -> types.CodeType:
        with _Quiet():
            tree, nodes = self._check(expr, what)
            # Each pass is skipped where it would change nothing: every secret read names a
            # secret (a name, attribute, keyword or constant key), and rewritten() tells
            # where the rewriter puts its guards.
            secret = guards = False
            for node in nodes:
                if type(node) not in _LEAVES:
                    secret = secret or names_secret(node)
                    guards = guards or rewritten(node)
            changed = secret
            if secret:
                tree = redacted_reads.redact_tree(tree)  # type: ignore[assignment]
            if secret or guards:
                rewriter = Rewriter()
                tree = rewriter.visit(tree)
                if rewriter.guarded:
                    # (begin([fresh meter]) or body): one C-level call sets this
                    # evaluation's meter (begin returns None), and the value is body's.
                    elts: list[ast.expr] = [ast.Constant(v) for v in meter.FRESH_METER]
                    fresh = ast.List(elts=elts, ctx=ast.Load())
                    begin = ast.Call(func=ast.Constant(P_BEGIN), args=[fresh], keywords=[])
                    tree.body = ast.BoolOp(op=ast.Or(), values=[begin, tree.body])
                    changed = True
            if changed:
                ast.fix_missing_locations(tree)
            try:
                code = compile(tree, filename, "eval")
            except (SyntaxError, ValueError, RecursionError) as exc:
                raise ExpressionRefused(f"{what} {expr!r} does not compile: {exc}") from None
        if not changed:
            # Nothing rewritten: no placeholder to bind, and no comprehension (it would
            # have been guarded), so no generator expression to mark.
            return code
        return mark_genexprs(redacted_reads.bind_placeholders(code, self._constants))


def _node_name(node: ast.AST) -> str:
    names = {
        ast.Lambda: "lambda",
        ast.NamedExpr: "the assignment expression (:=)",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.YieldFrom: "yield from",
    }
    return names.get(type(node), f"the {type(node).__name__} syntax")
