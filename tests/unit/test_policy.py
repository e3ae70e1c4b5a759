"""diagnose._safety.policy: the safe expression policy refuses every escape and every bomb, and
accepts (with the right values) what an on-call engineer types."""

from __future__ import annotations

import ast
import collections
import copy
import datetime
import math
import os
import sys
import time
import types
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnose._output import redaction
from diagnose._safety import meter, redacted_reads
from diagnose._safety.policy import MAX_EXPRESSION_CHARS, Policy
from diagnose.exceptions import ExpressionRefused, SpecError
from diagnose.managers import mag

# --- the namespace a probe sees -----------------------------------------------------------


class Leaf:
    sub = [7]


class Target:
    """A user object: its methods record their calls, its attributes record their sets."""

    calls: list[Any]  # set in __init__ through object.__setattr__, past the recording one

    def __init__(self) -> None:
        object.__setattr__(self, "calls", [])
        object.__setattr__(self, "rate", 1)
        object.__setattr__(self, "attr", Leaf())

    def __setattr__(self, name: str, value: Any) -> None:
        self.calls.append(("setattr", name))
        object.__setattr__(self, name, value)

    def method(self) -> int:
        self.calls.append("method")
        return 1


class MyDict(dict):
    """Overrides get in Python: that get is user code, not dict.get."""

    def get(self, key: Any, default: Any = None) -> Any:
        calls.append("MyDict.get")
        return super().get(key, default)


class Sneaky(dict):
    """Puts a mutating C method under a pure method's name."""

    get: Any = dict.pop  # not dict.get's signature, on purpose


class MyStr(str):
    def upper(self) -> str:
        calls.append("MyStr.upper")
        return "HACKED"


class FakeDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz: Any = None) -> Any:
        calls.append("FakeDatetime.now")
        return super().now(tz)


calls: list[str] = []


def helper() -> int:
    calls.append("helper")
    return 1


def caller() -> types.FrameType:
    return sys._getframe()


GLOBALS = {"datetime": datetime, "math": math, "time": time, "mag": mag}


def namespace() -> dict[str, Any]:
    """A fresh event namespace, as a return probe on a method would see it."""
    obj = Target()
    return {
        "args": [1, 2, 3],
        "kwargs": {"discount": 5, "x": 1},
        "result": 3.14159,
        "d": {"b": 2, "a": 1, "c": 3, "e": 0},
        "s": "a,b",
        "st": {1, 2},
        "now": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "dt": datetime.datetime(2024, 1, 1),
        "td": datetime.timedelta(seconds=90),
        "frame": caller(),
        "func": caller,
        "items": {"a": 1, "b": 10},
        "elapsed": 0.01234,
        "start": time.time() - 1,
        "x": 16.0,
        "a": "A",
        "b": 7,
        "obj": obj,
        "self": obj,
        "os": os,
        "sys": sys,
        "helper": helper,
        "gen": (i for i in range(3)),
        "pairs": zip("ab", "cd", strict=True),
        "dq": collections.deque([0]),
        "md": MyDict(a=1),
        "sn": Sneaky(a=1),
        "ms": MyStr("abc"),
        "fdt": FakeDatetime,
        "exc": _raised(),
    }


def _raised() -> BaseException:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        return exc


@pytest.fixture
def policy() -> Policy:
    p = Policy()
    p.allow(mag)
    return p


def run(policy: Policy, expr: str, ns: dict[str, Any] | None = None) -> Any:
    """Compile expr under policy and evaluate it as an instrument does (names merged into
    the globals, so that comprehensions see them)."""
    ns = namespace() if ns is None else ns
    code = policy.compile(expr, "<probe test>")
    return eval(code, {**GLOBALS, **ns}, ns)


def snapshot(ns: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(ns[k]) for k in ("args", "kwargs", "d", "st", "md", "sn")}


# --- the escape corpus ----------------------------------------------------------------------

ESCAPES = [
    "open('/etc/passwd').read()",
    "[open][0]('/etc/passwd')",
    "(open,)[0]('/etc/passwd').read()",
    "eval('1')",
    "exec('x = 1')",
    "compile('1', '', 'eval')",
    "__import__('os')",
    "__builtins__",
    "getattr(obj, 'rate')",
    "setattr(self, 'rate', 0)",
    "delattr(obj, 'rate')",
    "globals()",
    "vars()",
    "vars(obj)",
    "locals()",
    "kwargs.update(discount=100)",
    "dict.update(kwargs, discount=100)",
    "args.append(1)",
    "args.clear()",
    "args.sort()",
    "d.pop('a')",
    "d.setdefault('z', 1)",
    "st.add(1)",
    "st.discard(1)",
    "frame.f_back.f_globals",
    "frame.f_locals",
    "frame.f_builtins",
    "frame.f_back.f_trace",
    "(x for x in []).gi_frame",
    "exc.__traceback__.tb_frame",
    "time.sleep(5)",
    "sorted([0.01], key=time.sleep)",
    "os.system('true')",
    "os.environ",
    "sys.modules['os'].system('true')",
    "type(x).__subclasses__()",
    "type(x).mro()",
    "x.__class__",
    "().__class__.__bases__",
    "[].__class__",
    "lambda: 1",
    "(lambda: 1)()",
    "(y := 1)",
    "print(1)",
    "input()",
    "breakpoint()",
    "help()",
    "exit()",
    "quit()",
    "obj.method()",
    "self.method()",
    "helper()",
    "[helper() for _ in args]",
    "max(args, key=helper)",
    "'{0.__class__}'.format(x)",
    "'{0.rate}'.format(obj)",
    "'{a.rate}'.format_map({'a': obj})",
    "str.format('{0.__class__}', x)",
    "[0 for obj.rate in [0]]",
    "[0 for d['a'] in [9]]",
    "iter(args)",
    "next(gen)",
    "list(gen)",
    "[v for v in gen]",
    "list(pairs)",
    "dict(pairs)",
    "dq * 10**9",
    "5 in gen",
    "5 not in gen",
    "map(print, args)",
    "super()",
    "type('X', (), {})",
    "dir()",
    "md.get('a')",
    "sn.get('a')",
    "ms.upper()",
    "fdt.now()",
    "await x",
    "(yield)",
    "[v async for v in args]",
    "obj._private",
    "'\\x00diagnose:call'",
    "sys.modules['builtins']",
    "datetime.sys.modules['os'].environ",
    "[open for _ in [1]][0]('/etc/passwd')",
    "sorted([1], key=open)",
]


def test_escape_corpus_is_big_enough() -> None:
    """The escape corpus holds at least 30 expressions, none twice."""
    assert len(ESCAPES) >= 30
    assert len(set(ESCAPES)) == len(ESCAPES)


@pytest.mark.parametrize("expr", ESCAPES)
def test_escape_is_refused(policy: Policy, expr: str) -> None:
    """Every escape is refused, at compile or when it runs, and changes nothing."""
    ns = namespace()
    before = snapshot(ns)
    del calls[:]
    with pytest.raises(ExpressionRefused) as info:
        run(policy, expr, ns)
    assert "refused" in str(info.value)
    assert snapshot(ns) == before
    assert ns["obj"].calls == [] and ns["obj"].rate == 1
    assert calls == []


STATIC = [
    ("open('/etc/passwd').read()", "call of open is not allowed"),
    ("getattr(x, 'y')", "call of getattr is not allowed"),
    ("locals()", "call of locals is not allowed"),
    ("x.__class__", "the attribute '__class__' starts with '_'"),
    ("__import__('os')", "the name '__import__' starts with '_'"),
    ("frame.f_globals", "the attribute 'f_globals' reaches globals"),
    ("lambda: 1", "lambda is not allowed"),
    ("(y := 1)", "the assignment expression (:=) is not allowed"),
    ("[0 for obj.rate in [0]]", "may only bind names"),
    ("f(_secret=1)", "the keyword '_secret' starts with '_'"),
]


@pytest.mark.parametrize(("expr", "reason"), STATIC)
def test_static_refusal_says_what_and_why(policy: Policy, expr: str, reason: str) -> None:
    """check() refuses what the expression alone decides, naming it: publish exits 2 on it."""
    with pytest.raises(ExpressionRefused) as info:
        policy.check(expr)
    text = str(info.value)
    assert text.startswith(f"value {expr!r} refused: ")
    assert reason in text
    assert isinstance(info.value, SpecError)


def test_check_returns_the_tree_and_names_what(policy: Policy) -> None:
    """check() returns the parsed tree, and its refusals name the field and say why."""
    tree = policy.check("len(args)", what="custom.tags")
    assert isinstance(tree, ast.Expression)
    with pytest.raises(ExpressionRefused, match=r"^custom\.tags 'vars\(\)' refused"):
        policy.check("vars()", what="custom.tags")
    with pytest.raises(ExpressionRefused, match="must be a string"):
        policy.check(3)
    with pytest.raises(ExpressionRefused, match="is empty"):
        policy.check("  ")
    with pytest.raises(ExpressionRefused, match="does not compile"):
        policy.check("len(")
    with pytest.raises(ExpressionRefused, match="longer than 4096"):
        policy.check("1+" * MAX_EXPRESSION_CHARS + "1")
    with pytest.raises(ExpressionRefused, match="nested more than 100"):
        policy.check("-" * 150 + "1")


def test_runtime_refusal_names_the_callee(policy: Policy) -> None:
    """A call refused when it runs says which callable, as the instrument's status shows."""
    with pytest.raises(ExpressionRefused, match=r"call of time\.sleep is not allowed"):
        run(policy, "time.sleep(0)")
    with pytest.raises(ExpressionRefused, match=r"call of list\.append is not allowed"):
        run(policy, "args.append(1)")
    with pytest.raises(ExpressionRefused, match=r"call of Target\.method \(a method\)"):
        run(policy, "obj.method()")
    with pytest.raises(ExpressionRefused, match=r"call of helper is not allowed"):
        run(policy, "helper()")


# --- the legitimate corpus --------------------------------------------------------------------

LEGIT: list[tuple[str, Any]] = [
    ("type(result).__name__", "float"),
    ("kwargs.get('discount')", 5),
    ("kwargs.get('nope', 0)", 0),
    ("frame.f_back.f_code.co_name", "namespace"),
    ("frame.f_code.co_name", "caller"),
    ("now.isoformat()", "2024-01-02T03:04:05"),
    ("len(args)", 3),
    ("sorted(d.items())[:3]", [("a", 1), ("b", 2), ("c", 3)]),
    ("{k: v for k, v in kwargs.items() if k != 'x'}", {"discount": 5}),
    ('f"{result:.2f}"', "3.14"),
    ("f'{a!r:>5}|{b}'", "  'A'|7"),
    ("'%s-%d' % (a, b)", "A-7"),
    ("'%(a)s' % items", "1"),
    ("max(items.values())", 10),
    ("round(elapsed * 1000, 1)", 12.3),
    ("result if result else None", 3.14159),
    ("str(result)[:100]", "3.14159"),
    ("isinstance(result, dict)", False),
    ("time.time() - start > 0", True),
    ("time.monotonic() > 0 and time.perf_counter() > 0", True),
    ("math.sqrt(x)", 4.0),
    ("math.floor(result) + math.factorial(5)", 123),
    ("mag(items)", 0),
    ("mag(1000)", 3),
    ("sum(items.values())", 11),
    ("' '.join(sorted(kwargs))", "discount x"),
    ("dt.strftime('%Y')", "2024"),
    ("td.total_seconds()", 90.0),
    ("(now - dt).days", 1),
    ("now.date().isoformat()", "2024-01-02"),
    ("datetime.datetime.now().year >= 2024", True),
    ("datetime.datetime.fromtimestamp(0, datetime.timezone.utc).year", 1970),
    ("s.upper().split(',')", ["A", "B"]),
    ("s.replace(',', ';').zfill(5)", "00a;b"),
    ("list(enumerate(args))", [(0, 1), (1, 2), (2, 3)]),
    ("any(v > 1 for v in args)", True),
    ("all(v > 1 for v in args)", False),
    ("self.__module__", __name__),
    ("func.__name__ + func.__qualname__", "callercaller"),
    ("obj.attr.sub[0]", 7),
    ("[v * 2 for v in args]", [2, 4, 6]),
    ("{v % 2 for v in args}", {0, 1}),
    ("tuple(reversed(args))", (3, 2, 1)),
    ("[i * v for i, v in enumerate(args, 1)] + list(zip(args, 'xyz'))[:1]", [1, 4, 9, (1, "x")]),
    ("dict(zip(['p', 'q'], args))", {"p": 1, "q": 2}),
    ("min(d, key=d.get)", "e"),
    ("sorted(kwargs, key=str.upper, reverse=True)", ["x", "discount"]),
    ("abs(-b) + divmod(b, 2)[0] + pow(2, 3)", 18),
    ("hex(255) + bin(2) + oct(8)", "0xff0b100o10"),
    ("'x' * 3 + a", "xxxA"),
    ("args[1:] + [4]", [2, 3, 4]),
    ("args * 2", [1, 2, 3, 1, 2, 3]),
    ("'{} and {}'.format(a, b)", "A and 7"),
    ("'{0[a]:>3}'.format(items)", "  1"),
    ("'{:{}}|{x!r:>{w}}'.format(b, 3, x='A', w=4)", "  7| 'A'"),
    ("format(result, '.1f')", "3.1"),
    ("2 ** 10 + b ** 2 + (1 << b)", 1024 + 49 + 128),
    ("set(args) | {4}", {1, 2, 3, 4}),
    ("int('42') + float('1.5')", 43.5),
    ("[k for k in sorted(d) if d[k]]", ["a", "b", "c"]),
    ("'password' in kwargs", False),
    ("'discount' in kwargs and 9 not in args and 'b' in s", True),
    ("2 in (v for v in args)", True),
    ("list(range(b))[-1]", 6),
    ("md['a'] + len(md.keys()) + sn['a']", 3),
    ("ms.lower() + ms.upper.__name__", "abcupper"),
    ("type(exc).__name__ + str(exc)", "ValueErrorboom"),
    ("sum(v for v in range(1000))", 499500),
    ("str(b).rjust(3, '0')", "007"),
    ("'a\\d'.count('\\d') + ('x' is 'x')", 2),
]


def test_legit_corpus_is_big_enough() -> None:
    """The legitimate corpus holds at least 30 expressions."""
    assert len(LEGIT) >= 30


@pytest.mark.parametrize(("expr", "expected"), LEGIT)
def test_legit_expression_is_accepted_with_its_value(
    policy: Policy, expr: str, expected: Any
) -> None:
    """A legitimate expression gives its value and changes nothing it reads."""
    ns = namespace()
    before = snapshot(ns)
    del calls[:]
    assert run(policy, expr, ns) == expected
    assert snapshot(ns) == before
    assert calls == []


# --- allow() and subclasses ---------------------------------------------------------------------


def test_allow_adds_a_callable_to_one_policy_only() -> None:
    """allow() lets a callable in for that policy only, and takes only callables."""
    one, other = Policy(), Policy()
    one.allow(helper)
    one.allow(Target.method)
    del calls[:]
    ns = namespace()
    assert run(one, "helper() + obj.method()", ns) == 2
    assert calls == ["helper"] and ns["obj"].calls == ["method"]
    with pytest.raises(ExpressionRefused, match="call of helper"):
        run(other, "helper()")
    not_callable: Any = 3
    with pytest.raises(TypeError, match="takes a callable"):
        one.allow(not_callable)


def test_an_allowed_function_that_evaluates_a_probe_keeps_the_callers_budget() -> None:
    """An allowed function may be probed: its probe's evaluation sets the thread's meter,
    and the caller's budget must not start again after it (or a loop calling it would
    never reach its limit)."""
    policy = Policy()
    inner = policy.compile("len(args)", "<inner>")

    def probed(x: int) -> int:
        eval(inner, {"args": [x]})  # what a probe on this function would do
        return x

    policy.allow(probed)
    ns = {"probed": probed}
    with pytest.raises(ExpressionRefused, match="1,000,000 items"):
        run(policy, "[probed(v) for v in range(10)] and len(list(range(999_995)))", ns)
    assert run(policy, "[probed(v) for v in range(5)] and len(list(range(999_995)))", ns) == (
        999_995
    )


def test_allowing_a_bound_method_allows_its_function() -> None:
    """Allowing a bound method allows its function, on any instance."""
    policy = Policy()
    obj = Target()
    policy.allow(obj.method)
    other = Target()
    assert run(policy, "obj.method()", {"obj": other}) == 1
    assert other.calls == ["method"]


def test_compile_is_cached_and_refusals_are_not() -> None:
    """compile() caches by expression and file name; a refusal is raised every time."""
    policy = Policy()
    assert policy.compile("len(args)", "<a>") is policy.compile("len(args)", "<a>")
    assert policy.compile("len(args)", "<a>") is not policy.compile("len(args)", "<b>")
    for _ in range(2):
        with pytest.raises(ExpressionRefused):
            policy.compile("vars()", "<a>")


def test_allow_after_compile_applies_to_compiled_code() -> None:
    """manager.allow() may come after a spec applied: the compiled code sees it."""
    policy = Policy()
    code = policy.compile("helper()", "<t>")
    with pytest.raises(ExpressionRefused):
        eval(code, {"helper": helper})
    policy.allow(helper)
    assert eval(code, {"helper": helper}) == 1


def test_allowed_dict_method_on_a_subclass_that_keeps_it(policy: Policy) -> None:
    """A subclass that does not override a method gets it allowed; one that does, not."""

    class Headers(dict):
        pass

    assert run(policy, "h.get('a')", {"h": Headers(a=1)}) == 1
    with pytest.raises(ExpressionRefused, match="MyDict.get"):
        run(policy, "md.get('a')")
    ns = namespace()
    with pytest.raises(ExpressionRefused, match=r"Sneaky\.pop"):
        run(policy, "sn.get('a')", ns)
    assert ns["sn"] == {"a": 1}
    with pytest.raises(ExpressionRefused, match="FakeDatetime.now"):
        run(policy, "fdt.now()")


def test_allowed_names_list_the_allowlist(policy: Policy) -> None:
    """allowed_names() lists the pure builtins and methods allowed, and none of the refused ones."""
    names = set(policy.allowed_names())
    assert {"len", "sorted", "dict.get", "str.upper", "datetime.datetime.now"} <= names
    assert {"time.time", "math.sqrt", "datetime.timedelta.total_seconds"} <= names
    assert "mag" in names
    assert not names & {"open", "eval", "getattr", "time.sleep", "list.append", "dict.update"}


def test_unbound_descriptor_calls_follow_the_same_list(policy: Policy) -> None:
    """Calls through unbound descriptors (dict.get(d, ...)) follow the same allowlist."""
    assert run(policy, "dict.get(d, 'a') + str.count(s, ',')") == 2
    with pytest.raises(ExpressionRefused, match=r"dict\.update"):
        run(policy, "dict.update(d, a=9)")


# --- self-contained code ------------------------------------------------------------------------


def _all_consts(code: types.CodeType) -> list[Any]:
    found = []
    for const in code.co_consts:
        found.append(const)
        if isinstance(const, types.CodeType):
            found.extend(_all_consts(const))
    return found


def test_compiled_code_carries_its_guards(policy: Policy) -> None:
    """No placeholder is left, and namespaces without any guard name still get guarded."""
    expr = "[len(v) for v in ['ab', 'c']] + [v.append(1) for v in [w] if not v]"
    code = policy.compile(expr, "<t>")
    consts = _all_consts(code)
    assert not any(isinstance(c, str) and c.startswith("\x00") for c in consts)
    assert any(isinstance(c, types.CodeType) for c in consts) or sys.version_info >= (3, 12)
    assert eval(code, {"w": [1]}) == [2, 1]
    lst: list[int] = []
    with pytest.raises(ExpressionRefused, match=r"list\.append"):
        eval(code, {"w": lst, "__builtins__": {"len": len}})
    assert lst == []


def test_folded_constants_cannot_spell_a_placeholder(policy: Policy) -> None:
    """The compiler folds 'a' + 'b' into one constant: it must not become a guard."""
    mark = redacted_reads.PLACEHOLDER_MARK
    half = len(mark) // 2
    for name in ("call1", "begin", "redacted"):
        expr = f"({mark[:half]!r} + {mark[half:] + name!r})"
        assert run(policy, expr) == mark + name
    assert mark != redacted_reads.PLACEHOLDER_PREFIX and redacted_reads.PLACEHOLDER.startswith(mark)


def test_namespace_names_cannot_stand_in_for_guards(policy: Policy) -> None:
    """Names like call/begin in the namespace change nothing: the guards are constants."""
    code = policy.compile("args.append(1)", "<t>")
    args: list[int] = []
    evil = {"call": lambda f, *a: f(*a), "begin": None, "args": args}
    with pytest.raises(ExpressionRefused):
        eval(code, evil, evil)
    assert args == []


def test_generator_expression_is_ours_and_target_generators_are_not(policy: Policy) -> None:
    """A generator expression of the probe is metered; consuming a generator of the target is
    refused."""
    code = policy.compile("(v for v in args)", "<t>")
    made = eval(code, {"args": [1, 2]})
    assert made.gi_code.co_name == meter.GENEXPR_NAME
    assert run(policy, "sorted(v for v in args)") == [1, 2, 3]
    ns = namespace()
    with pytest.raises(ExpressionRefused, match="consume"):
        run(policy, "sum(gen)", ns)
    assert list(ns["gen"]) == [0, 1, 2]


# --- redaction through the policy ---------------------------------------------------------------


def test_compile_redacts_secret_reads(policy: Policy) -> None:
    """Compiled code reads secrets as <redacted>, in names, keys, attributes and formatting."""
    ns: dict[str, Any] = {
        "password": "hunter2",
        "kwargs": {"token": "t", "user": "u"},
        "obj": Target(),
    }
    ns["obj"].api_key = "k"
    assert run(policy, "password", ns) is redaction.REDACTED
    assert run(policy, "kwargs['token']", ns) is redaction.REDACTED
    assert run(policy, "kwargs.get('token')", ns) is redaction.REDACTED
    assert run(policy, "obj.api_key", ns) is redaction.REDACTED
    assert run(policy, "f'{password}!'", ns) == "<redacted>!"
    assert run(policy, "'{token}/{user}'.format(**kwargs)", ns) == "<redacted>/u"
    assert run(policy, "'{0[token]}/{0[user]}'.format(kwargs)", ns) == "<redacted>/u"
    assert run(policy, "'{token}/{user}'.format_map(kwargs)", ns) == "<redacted>/u"
    assert run(policy, "'%(token)s/%(user)s' % kwargs", ns) == "<redacted>/u"
    fmt = {"fmt": "%(token)s", **ns}
    assert run(policy, "fmt % kwargs", fmt) == "<redacted>"
    assert str(run(policy, "{'user': kwargs['user'], 'password': password}", ns)) == (
        "{'user': 'u', 'password': <redacted>}"
    )


# --- resource bombs (each bomb: tests/integration/test_policy.py, in a fresh interpreter) ---


def test_limits_allow_what_is_under_them(policy: Policy) -> None:
    """The limits are not off by much: just under each, the expression runs."""
    ns = {"s": "x", "n": 2**20}
    assert len(run(policy, "s * n", ns)) == 2**20
    assert len(run(policy, "list(range(10**6))", ns)) == 10**6
    assert run(policy, "(2 ** 131000).bit_length()", ns) == 131001
    assert len(run(policy, "f'{s:>1000}'", ns)) == 1000
    with pytest.raises(ExpressionRefused, match="over 1,000,000 items"):
        run(policy, "len(list(range(10**6 + 1)))", ns)


# --- typical expressions (what their guards cost: bench/policy_overhead.py) -----------------------

TYPICAL = [
    "len(args)",
    "kwargs.get('x')",
    "result",
    "type(result).__name__",
    "round(elapsed * 1000, 1)",
]


@pytest.mark.parametrize("expr", TYPICAL)
def test_a_guarded_typical_expression_gives_the_plain_value(policy: Policy, expr: str) -> None:
    """A typical expression gives the same value guarded as compiled plainly."""
    ns = {"args": [1, 2], "kwargs": {"x": 1}, "result": 3.5, "elapsed": 0.5}
    plain = compile(expr, "<plain>", "eval")
    safe = policy.compile(expr, "<safe>")
    assert eval(safe, GLOBALS, dict(ns)) == eval(plain, GLOBALS, dict(ns))


# --- property: random expressions never escape ----------------------------------------------------

_NAMES = ["args", "kwargs", "d", "s", "st", "obj", "os", "sys", "time", "helper", "open",
          "eval", "len", "sorted", "str", "type", "range", "getattr", "setattr", "vars",
          "print", "n", "frame", "dict", "list", "sum", "max", "md", "sn", "ms", "fdt", "gen",
          "exc", "datetime", "math", "format", "min", "any", "iter", "zip"]  # fmt: skip
_ATTRS = ["append", "get", "update", "pop", "upper", "rate", "method", "system", "keys",
          "items", "f_back", "f_code", "co_name", "real", "format", "ljust", "join", "count",
          "clear", "add", "sleep", "time", "__class__", "f_globals", "gi_frame", "mro",
          "__subclasses__", "setdefault", "environ", "values", "attr", "sub", "modules",
          "now", "factorial", "f_locals", "tb_frame", "__traceback__", "sort",
          "format_map", "translate", "center", "insert", "remove", "discard"]  # fmt: skip

_atoms = st.one_of(
    st.sampled_from(_NAMES),
    st.integers(-3, 10**10).map(repr),
    st.sampled_from(["'a'", "'x,y'", "'{0.real}'", "'%*d'", "[]", "()", "{}", "None"]),
)


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(_ATTRS)).map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(inner, st.lists(inner, max_size=2)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, st.sampled_from(["+", "*", "**", "%", "<<", "-", "//", "=="]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(inner, inner).map(lambda t: f"[{t[0]} for v in {t[1]}]"),
        st.tuples(inner, inner).map(lambda t: f"f'{{{t[0]}:>{{{t[1]}}}}}'"),
        st.lists(inner, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
        inner.map(lambda e: f"[*{e}]"),
    )


_expressions = st.recursive(_atoms, _extend, max_leaves=8)
_ORDINARY = (ArithmeticError, LookupError, TypeError, ValueError, AttributeError, NameError)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_expressions)
def test_random_expressions_never_escape(expr: str) -> None:
    """A random expression either is refused or runs without a call, write or change outside it."""
    policy = Policy()
    ns = namespace()
    ns["n"] = 10**9
    before = snapshot(ns)
    del calls[:]
    opened = mock.Mock()
    slept = mock.Mock()
    system = mock.Mock()
    try:
        code = policy.compile(expr, "<fuzz>")
    except ExpressionRefused:
        return
    with (
        mock.patch("builtins.open", opened),
        mock.patch("time.sleep", slept),
        mock.patch("os.system", system),
    ):
        try:
            eval(code, {**GLOBALS, **ns}, ns)
        except ExpressionRefused:
            pass
        except _ORDINARY:
            pass
    assert not opened.called and not slept.called and not system.called
    assert snapshot(ns) == before
    assert ns["obj"].calls == [] and ns["obj"].rate == 1
    assert calls == []


@pytest.mark.parametrize(
    "expr",
    [
        "['x' * 1048576 for _ in range(100)]",
        "[10**30000 for _ in range(1000)]",
        "[1 << 100000 for _ in range(1000)]",
        "['%1000000d' % v for v in range(100)]",
        "[f'{v:>1000000}' for v in range(100)]",
    ],
)
def test_constants_that_build_big_values_are_charged_at_each_turn(
    policy: Policy, expr: str
) -> None:
    """Allowed once, but not a thousand times: a big constant operation is still guarded
    (the evaluation's byte budget, or its clock, stops it)."""
    with pytest.raises(ExpressionRefused, match="in one evaluation|took over 25 ms"):
        run(policy, expr, {})


class Endless:
    """An iterable without __contains__ whose iterators never end."""

    def __iter__(self) -> Any:
        import itertools

        return itertools.count()


def test_endless_iterables_are_cut_off(policy: Policy) -> None:
    """Iterating an endless iterable is cut off with ExpressionRefused."""
    ns = {"e": Endless()}
    assert run(policy, "5 in e", ns) is True
    for expr in ("-1 in e", "[v for v in e]", "max(e)", "sum(v for v in e)"):
        with pytest.raises(ExpressionRefused, match="1,000,000 items|took over 25 ms"):
            run(policy, expr, ns)
