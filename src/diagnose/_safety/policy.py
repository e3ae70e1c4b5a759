"""The safe expression policy: an allowlist decided from the AST where it can be, and by
guards compiled into the code object where only the running values can tell.

Invariant: a safe expression reads no namespace but its event's and ``global_namespace``,
calls only what the allowlist holds, and every guard is a constant of its code object, so
no name of a namespace can stand in for one. Design: docs/architecture.md.
"""

from __future__ import annotations

import ast
import builtins
import re
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from diagnose._output import redaction
from diagnose._safety import allowlist, guarded, meter, operators, redacted_reads
from diagnose.exceptions import ExpressionRefused

__all__ = ("MAX_DEPTH", "MAX_EXPRESSION_CHARS", "Policy")

MAX_EXPRESSION_CHARS = 4096
MAX_DEPTH = 100
#: How many compiled expressions a policy keeps (the least recently used go first).
COMPILED_CACHE = 256

_ALLOWED_NODES = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Store, ast.Attribute,
    ast.Subscript, ast.Slice, ast.Starred, ast.List, ast.Tuple, ast.Set, ast.Dict,
    ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.keyword,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension,
    ast.JoinedStr, ast.FormattedValue,
    ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip
_ALLOWED_DUNDERS = frozenset({"__name__", "__qualname__", "__module__"})
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

# The placeholders the rewritten tree calls, and the functions they become.
_P = redacted_reads.PLACEHOLDER_PREFIX
P_CALL = _P + "call"
P_CALLS = tuple(f"{_P}call{n}" for n in range(4))  # calls of 0 to 3 positional arguments
P_BEGIN = _P + "begin"
P_ITER = _P + "iter"
P_LOOP = _P + "loop"
P_FORMAT = _P + "format"
P_IN = _P + "in"
_BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Mult: (_P + "mul", operators.mul),
    ast.Pow: (_P + "pow", operators.power),
    ast.LShift: (_P + "lshift", operators.lshift),
    ast.Add: (_P + "add", operators.add),
    ast.Mod: (_P + "mod", operators.mod),
}
_PLAIN_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
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


def _depth(tree: ast.AST) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _name_refused(name: str) -> bool:
    return name.startswith("_") and name != "_" and name not in _ALLOWED_DUNDERS


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, complex)


def _constant_spec(spec: ast.AST | None) -> str | None:
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


class _Rewriter(ast.NodeTransformer):
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
        guard = _BINOPS.get(type(node.op))
        if guard is None:
            return node
        left, right = node.left, node.right
        if isinstance(node.op, ast.Add) and (_is_number(left) or _is_number(right)):
            return node  # a number plus anything cannot grow a sequence
        if isinstance(node.op, ast.Mult) and any(
            isinstance(side, ast.Constant) and type(side.value) in (float, complex)
            for side in (left, right)
        ):
            return node
        if (
            isinstance(node.op, ast.Mod)
            and isinstance(left, ast.Constant)
            and isinstance(left.value, str)
            and _small_percent(left.value)
            and "%(" not in left.value
        ):
            return node  # a constant format whose widths are small (no '*', no names)
        if _is_number(left) and _is_number(right) and _small_number_op(node):
            return node  # the compiler folds it
        return self.placeholder(guard[0], node, [left, right])

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        # `x in it` iterates `it` when it has no __contains__: an iterator of the target's
        # would be consumed, an endless one would never return. (A chain such as
        # `a < b in c` is left as it is.)
        self.generic_visit(node)
        if len(node.ops) != 1 or not isinstance(node.ops[0], ast.In | ast.NotIn):
            return node
        test = self.placeholder(P_IN, node, [node.left, node.comparators[0]])
        if isinstance(node.ops[0], ast.NotIn):
            return ast.copy_location(ast.UnaryOp(op=ast.Not(), operand=test), node)
        return test

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        self.generic_visit(node)
        spec = _constant_spec(node.format_spec)
        if spec is not None and _small_spec(spec):
            return node  # a constant spec with small widths: nothing to charge
        assert node.format_spec is not None
        value = self.placeholder(
            P_FORMAT, node, [node.value, ast.Constant(node.conversion), node.format_spec]
        )
        return ast.copy_location(ast.FormattedValue(value=value, conversion=-1), node)


def _mark_genexprs(code: types.CodeType) -> types.CodeType:
    """Rename the generator expressions' code objects, so counted() knows them as ours."""
    consts = tuple(
        _mark_genexprs(c) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    if code.co_name == "<genexpr>":
        return code.replace(co_consts=consts, co_name=meter.GENEXPR_NAME)
    return code.replace(co_consts=consts)


class Policy:
    """The safe expression policy, with its own allowlist.

    ``check(expr)`` applies the static rules and returns the tree; ``compile(expr,
    filename)`` returns a code object for ``eval(code, globals, locals)`` that guards
    itself; ``allow(callable)`` lets expressions compiled by this policy call callable
    (a function, a builtin, a class, or an unbound method: allowing a function also
    allows it bound as a method). Thread-safe once built: compiled code only reads the
    allowlist, and allow() changes it with single dict operations.
    """

    def __init__(self) -> None:
        self._table = allowlist.default_allowlist()
        # Least recently used first. A full cache stays full (one entry in, one out): its
        # memory is the same after a thousand distinct specs as after ten thousand, where a
        # cache emptied when full would hold anything from none to all of its entries.
        self._compiled: OrderedDict[tuple[str, str], types.CodeType] = OrderedDict()
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
            **{name: function for name, function in _BINOPS.values()},
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

    def allowed_names(self) -> list[str]:
        """Return the names of the callables allowed, sorted (for the README or a CLI)."""
        return sorted({allowlist.describe(entry[0]) for entry in self._table.values()})

    def call(self, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call function as a safe expression would: refused unless it is allowed."""
        return self._call(function, *args, **kwargs)

    # --- static checks ---------------------------------------------------------------

    def check(self, expr: object, what: str = "value") -> ast.Expression:
        """Parse expr and apply the static rules; raise ExpressionRefused saying why."""
        if not isinstance(expr, str):
            raise ExpressionRefused(
                f"{what} must be a string expression, not {type(expr).__name__}"
            )
        if not expr.strip():
            raise ExpressionRefused(f"{what} is empty")
        if len(expr) > MAX_EXPRESSION_CHARS:
            raise ExpressionRefused(f"{what} is longer than {MAX_EXPRESSION_CHARS} characters")
        try:
            with warnings.catch_warnings():
                # An invalid escape ('\d') warns: not on the target's stderr at each apply.
                warnings.simplefilter("ignore", SyntaxWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionRefused(f"{what} {expr!r} does not compile: {exc.msg}") from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise _refused(what, expr, f"does not parse ({type(exc).__name__})") from None
        if _depth(tree) > MAX_DEPTH:
            raise _refused(what, expr, f"nested more than {MAX_DEPTH} levels deep")
        for node in ast.walk(tree):
            reason = self._node_reason(node)
            if reason:
                raise _refused(what, expr, reason)
        meter.begin(list(meter.FRESH_METER))
        try:
            self._fold(tree.body)
        except ExpressionRefused as exc:
            reason = str(exc).removeprefix("refused at run time: ")
            raise _refused(what, expr, reason) from None
        finally:
            meter.begin(list(meter.FRESH_METER))
        return tree

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
                guarded.check_spec(_constant_spec(node.format_spec))
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

    def _fold(self, node: ast.AST) -> Any:
        """Evaluate node if it is constant, through the guards; _UNKNOWN if it is not.

        Visits every sub-expression, so that a constant bomb anywhere is found."""
        children = []
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                children.append(self._fold(child))
            else:  # a comprehension's or a keyword's expressions
                for grandchild in ast.iter_child_nodes(child):
                    if isinstance(grandchild, ast.expr):
                        self._fold(grandchild)
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
            guard = _BINOPS.get(type(node.op))
            if guard is not None:
                return guard[1](left, right)
            plain = _PLAIN_BINOPS.get(type(node.op))
            return _UNKNOWN if plain is None else plain(left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            return -children[0] if isinstance(node.op, ast.USub) else +children[0]
        if isinstance(node, ast.Tuple | ast.List) and len(children) <= 100:
            if any(isinstance(e, ast.Starred) for e in node.elts):
                return _UNKNOWN
            return tuple(children) if isinstance(node, ast.Tuple) else list(children)
        return _UNKNOWN

    # --- compiling -------------------------------------------------------------------

    def compile(self, expr: object, filename: str, what: str = "value") -> types.CodeType:
        """Check expr, rewrite it with its guards and redaction, and compile it for eval().

        The code is cached per (expr, filename): it reads the allowlist when it runs, so
        it stays right after allow(); a refusal is not cached (it raises again)."""
        key = (expr, filename) if isinstance(expr, str) else None
        code = self._compiled.get(key) if key is not None else None
        if code is not None:
            try:
                self._compiled.move_to_end(key)  # type: ignore[arg-type]
            except KeyError:
                pass  # evicted by another thread meanwhile
            return code
        code = self._compile(expr, filename, what)
        if key is not None:
            self._compiled[key] = code
            while len(self._compiled) > COMPILED_CACHE:
                try:
                    self._compiled.popitem(last=False)
                except KeyError:
                    break
        return code

    def _compile(self, expr: object, filename: str, what: str) -> types.CodeType:
        tree = self.check(expr, what)
        tree = redacted_reads.redact_tree(tree)  # type: ignore[assignment]
        rewriter = _Rewriter()
        tree = rewriter.visit(tree)
        if rewriter.guarded:
            # (begin([fresh meter]) or body): one C-level call sets this evaluation's
            # meter (begin returns None), and the expression's value is body's.
            fresh = ast.List(elts=[ast.Constant(v) for v in meter.FRESH_METER], ctx=ast.Load())
            begin = ast.Call(func=ast.Constant(P_BEGIN), args=[fresh], keywords=[])
            tree.body = ast.BoolOp(op=ast.Or(), values=[begin, tree.body])
        ast.fix_missing_locations(tree)
        try:
            code = redacted_reads.compile_quietly(tree, filename)
        except (SyntaxError, ValueError, RecursionError) as exc:
            raise ExpressionRefused(f"{what} {expr!r} does not compile: {exc}") from None
        return _mark_genexprs(redacted_reads.bind_placeholders(code, self._constants))


def _node_name(node: ast.AST) -> str:
    names = {
        ast.Lambda: "lambda",
        ast.NamedExpr: "the assignment expression (:=)",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.YieldFrom: "yield from",
    }
    return names.get(type(node), f"the {type(node).__name__} syntax")
