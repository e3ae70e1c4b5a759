"""Generate the code objects a probe swaps into its target function.

The function object itself is never replaced, so every reference to it sees the probe. The
generated code keeps the target's parameters (``inspect.signature`` and defaults unchanged),
calls a copy of the original, and removes its own frame from tracebacks it re-raises.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from typing import Any

__all__ = (
    "Kind",
    "Sections",
    "Signature",
    "at_def_line",
    "build_wrapper_code",
    "is_generated",
    "compile_like",
    "copy_function",
    "code_lines",
    "kind_of",
    "with_hooks",
    "with_return_hook",
)

_CO_VARARGS = inspect.CO_VARARGS
_CO_VARKEYWORDS = inspect.CO_VARKEYWORDS
_CO_GENERATOR = inspect.CO_GENERATOR
_CO_COROUTINE = inspect.CO_COROUTINE
_CO_ASYNC_GENERATOR = inspect.CO_ASYNC_GENERATOR
_CO_ITERABLE_COROUTINE = inspect.CO_ITERABLE_COROUTINE

_ORIG = "__diagnose_orig_placeholder__"
# A local of every wrapper and breakpoint layer generated here (the original function); a
# target may use no name starting with _dgn_ (see build_wrapper_code), so none has it.
_ORIGINAL_LOCAL = "_dgn_o"


def is_generated(code: types.CodeType) -> bool:
    """Tell whether code is a probe's wrapper or a breakpoint's layer, generated here (it
    carries the target's file and line, so that tracebacks and inspect read the target)."""
    return _ORIGINAL_LOCAL in code.co_varnames


class Kind:
    """What calling a function gives: a value, a generator, a coroutine, an async generator."""

    FUNCTION = "function"
    GENERATOR = "generator"
    COROUTINE = "coroutine"
    ASYNC_GENERATOR = "async generator"


def kind_of(code: types.CodeType) -> str:
    """Return the Kind of a code object."""
    flags = code.co_flags
    if flags & _CO_ASYNC_GENERATOR:
        return Kind.ASYNC_GENERATOR
    if flags & _CO_COROUTINE:
        return Kind.COROUTINE
    if flags & (_CO_GENERATOR | _CO_ITERABLE_COROUTINE):
        return Kind.GENERATOR
    return Kind.FUNCTION


def copy_function(func: Any, code: types.CodeType | None = None) -> Any:
    """Return a new function object sharing func's globals, closure and defaults."""
    clone = types.FunctionType(
        code or func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__
    )
    clone.__kwdefaults__ = func.__kwdefaults__
    clone.__annotations__ = func.__annotations__
    clone.__qualname__ = func.__qualname__
    clone.__module__ = func.__module__
    clone.__doc__ = func.__doc__
    return clone


class Signature:
    """A code object's parameters, and how a generated wrapper takes and forwards them.

    An exact wrapper has the target's own parameters: the cheapest to call, and each
    argument is a local by its name (defaults applied). A generic wrapper takes
    ``*_dgn_a, **_dgn_k``, so that ``args`` and ``kwargs`` are what the caller passed;
    while it is attached the probe sets ``__signature__`` so that
    ``inspect.signature`` still answers for the target.
    """

    def __init__(self, code: types.CodeType, exact: bool = True) -> None:
        names = code.co_varnames
        npos = code.co_argcount
        nkwonly = code.co_kwonlyargcount
        self.exact = exact
        self.posonly = code.co_posonlyargcount
        self.positional = tuple(names[:npos])
        self.kwonly = tuple(names[npos : npos + nkwonly])
        index = npos + nkwonly
        self.varargs: str | None = None
        self.varkw: str | None = None
        if code.co_flags & _CO_VARARGS:
            self.varargs = names[index]
            index += 1
        if code.co_flags & _CO_VARKEYWORDS:
            self.varkw = names[index]
        self.names = (
            self.positional + self.kwonly + tuple(n for n in (self.varargs, self.varkw) if n)
        )
        if not exact:
            self.params = self.forward = "*_dgn_a, **_dgn_k"
            self.args, self.kwargs = "_dgn_a", "_dgn_k"
            return
        params: list[str] = list(self.positional[: self.posonly])
        if self.posonly:
            params.append("/")
        params.extend(self.positional[self.posonly :])
        if self.varargs:
            params.append("*" + self.varargs)
        elif self.kwonly:
            params.append("*")
        params.extend(self.kwonly)
        if self.varkw:
            params.append("**" + self.varkw)
        star = ["*" + self.varargs] if self.varargs else []
        dstar = ["**" + self.varkw] if self.varkw else []
        #: the parameter list, e.g. "a, /, b, *args, c, **kw"
        self.params = ", ".join(params)
        #: arguments that forward every parameter, e.g. "a, b, *args, c=c, **kw"
        self.forward = ", ".join(
            list(self.positional) + star + [f"{k}={k}" for k in self.kwonly] + dstar
        )
        #: the positional arguments as a tuple display, e.g. "(a, b, *args)"
        self.args = "(" + "".join(p + ", " for p in list(self.positional) + star) + ")"
        #: the keyword arguments as a dict display, e.g. "{'c': c, **kw}"
        self.kwargs = "{" + ", ".join([f"{k!r}: {k}" for k in self.kwonly] + dstar) + "}"


class Sections:
    """The generated lines a wrapper runs: before the call, after it returns, if it raises."""

    def __init__(self) -> None:
        self.before: list[str] = []
        self.after: list[str] = []
        self.on_error: list[str] = []
        #: placeholder string -> the object the built code has in its place
        self.consts: dict[str, Any] = {}

    def const(self, name: str, value: Any) -> str:
        """Make value available to the generated lines; return the expression that gives it.

        The expression is a string literal that the built code's constants replace with
        value: a LOAD_CONST, with no local to set on each call. Use an attribute or method
        of it, never call it (a call of a literal is a SyntaxWarning)."""
        marker = f"@{name}"
        self.consts[marker] = value
        return repr(marker)


def _invoke_lines(kind: str, call: str) -> list[str]:
    """Return lines that call the original with call args and set _dgn_r to its outcome."""
    if kind == Kind.ASYNC_GENERATOR:
        return [
            f"_dgn_g = _dgn_o({call})",
            "try:",
            "    _dgn_v = await _dgn_g.__anext__()",
            "    while True:",
            "        try:",
            "            _dgn_s = yield _dgn_v",
            "        except GeneratorExit:",
            "            await _dgn_g.aclose()",
            "            raise",
            "        except BaseException as _dgn_x:",
            "            _dgn_v = await _dgn_g.athrow(_dgn_x)",
            "        else:",
            "            if _dgn_s is None:",
            "                _dgn_v = await _dgn_g.__anext__()",
            "            else:",
            "                _dgn_v = await _dgn_g.asend(_dgn_s)",
            "except StopAsyncIteration:",
            "    _dgn_r = None",
        ]
    invoke = {
        Kind.FUNCTION: f"_dgn_o({call})",
        Kind.GENERATOR: f"(yield from _dgn_o({call}))",
        Kind.COROUTINE: f"(await _dgn_o({call}))",
    }[kind]
    return [f"_dgn_r = {invoke}"]


@functools.lru_cache(maxsize=256)
def _compile_wrapper(source: str, filename: str) -> types.CodeType:
    """Compile wrapper source once; the same probe shape reuses it with other constants."""
    module = compile(source, filename, "exec", dont_inherit=True)
    factory = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    return next(c for c in factory.co_consts if isinstance(c, types.CodeType))


def build_wrapper_code(
    target: types.CodeType,
    orig: Any,
    sections: Sections,
    sig: Signature | None = None,
    *,
    label: str | None = None,
    kind_of_wrapper: str = "probe",
    slots: dict[str, int] | None = None,
) -> types.CodeType:
    """Build code with target's parameters and free variables that runs sections around orig.

    The code calls ``orig`` with every parameter, sets ``_dgn_r`` to what it returned,
    and returns that. ``sections.on_error`` runs with ``_dgn_e`` set to an exception
    it raised, which then propagates without the wrapper's frame in its traceback.

    The wrapper is filed where the target is: its file and first line, so that
    ``inspect.getsource()`` (``getsourcelines``, ``getfile``) of the probed function reads
    the target's source as before. Every instruction of it is on the target's ``def``
    line, so that a frame of it (in the traceback of an instrument's error) never sends a
    reader to other code of that file. ``label`` and ``kind_of_wrapper`` name the
    generated source's compiled form only (``<probe LABEL>``). ``slots``, if given, gets
    the index in ``co_consts`` of each constant of ``sections`` (by its marker), so that
    one can be swapped in the built code.
    """
    kind = kind_of(target)
    sig = sig or Signature(target)
    clash = {n for n in target.co_varnames + target.co_freevars if n.startswith("_dgn_")}
    if clash:
        raise ValueError(f"cannot probe a function with names {sorted(clash)}")
    placeholders: dict[str, Any] = {_ORIG: orig, **sections.consts}
    body: list[str] = []
    if target.co_freevars:
        body.append("if 0: " + "; ".join(target.co_freevars))
    body.append(f'_dgn_o = "{_ORIG}"')
    body += sections.before
    body.append("try:")
    body += ["    " + line for line in _invoke_lines(kind, sig.forward)]
    body.append("except BaseException as _dgn_e:")
    body += ["    " + line for line in sections.on_error]
    body += ["    _dgn_e.__traceback__ = _dgn_e.__traceback__.tb_next", "    raise"]
    body += sections.after
    if kind != Kind.ASYNC_GENERATOR:
        body.append("return _dgn_r")

    code = compile_like(
        target, sig.params, body, placeholders, f"<diagnose {kind_of_wrapper}>", slots
    )
    return at_def_line(code, target)


def at_def_line(code: types.CodeType, target: types.CodeType) -> types.CodeType:
    """Return code filed at target's file and first line, every instruction on that line."""
    return code.replace(
        co_filename=target.co_filename,
        co_firstlineno=target.co_firstlineno,
        co_linetable=_one_line_table(len(code.co_code) // 2),
    )


@functools.lru_cache(maxsize=64)
def _one_line_table(units: int) -> bytes:
    """Return a location table (3.11+) that puts units code units on the first line, with
    no columns: entries of at most 8 units, each "no column, line delta 0"."""
    table = bytearray()
    while units > 0:
        length = min(units, 8)
        table += bytes((0x80 | (13 << 3) | (length - 1), 0))
        units -= length
    return bytes(table)


def compile_like(
    target: types.CodeType,
    params: str,
    body: list[str],
    placeholders: dict[str, Any],
    filename: str,
    slots: dict[str, int] | None = None,
) -> types.CodeType:
    """Compile body as the code of a function of target's kind, with parameters params
    and target's free variables, named as target; each string constant of placeholders
    becomes its object (a LOAD_CONST, no local to set on each call), its index in
    ``co_consts`` put in slots (if given) under its string."""
    kind = kind_of(target)
    prefix = "async def" if kind in (Kind.COROUTINE, Kind.ASYNC_GENERATOR) else "def"
    lines = ["def __diagnose_factory__():"]
    if target.co_freevars:
        lines.append("    " + " = ".join(target.co_freevars) + " = None")
    lines.append(f"    {prefix} __dgn_wrapper__({params}):")
    lines += ["        " + line for line in body]
    lines.append("    return __dgn_wrapper__")
    code = _compile_wrapper("\n".join(lines), filename)
    if code.co_freevars != target.co_freevars:
        raise ValueError(f"free variables differ: {code.co_freevars} != {target.co_freevars}")
    consts = tuple(
        placeholders[c] if isinstance(c, str) and c in placeholders else c for c in code.co_consts
    )
    if slots is not None:
        slots.update(
            (c, i) for i, c in enumerate(code.co_consts) if isinstance(c, str) and c in placeholders
        )
    return code.replace(
        co_consts=consts,
        co_flags=code.co_flags | (target.co_flags & _CO_ITERABLE_COROUTINE),
        co_name=target.co_name,
        co_qualname=target.co_qualname,
    )


def _hook_call(hook: Any, location: Any) -> list[Any]:
    """Return instructions that call ``hook()`` and drop its result (stack-neutral)."""
    from bytecode import Instr

    # How a call with no arguments is spelled changed in 3.12 (no PRECALL) and in 3.13
    # (the callable goes below the NULL).
    if sys.version_info < (3, 12):
        call = [("PUSH_NULL", None), ("LOAD_CONST", hook), ("PRECALL", 0), ("CALL", 0)]
    elif sys.version_info < (3, 13):
        call = [("PUSH_NULL", None), ("LOAD_CONST", hook), ("CALL", 0)]
    else:
        call = [("LOAD_CONST", hook), ("PUSH_NULL", None), ("CALL", 0)]
    call.append(("POP_TOP", None))
    return [
        Instr(name, location=location) if arg is None else Instr(name, arg, location=location)
        for name, arg in call
    ]


_LOOP_EXITS = frozenset({"END_FOR", "END_ASYNC_FOR", "POP_ITER"})


def code_lines(code: types.CodeType) -> set[int]:
    """Return the source lines of code that have instructions of their own (not the
    ``def`` line's set-up, nor the lines of nested functions)."""
    return {
        line
        for _start, _end, line in code.co_lines()
        if line is not None and line != code.co_firstlineno
    }


def with_hooks(
    code: types.CodeType, return_hook: Any = None, line_hooks: dict[int, Any] | None = None
) -> types.CodeType:
    """Return a copy of code that calls ``return_hook()`` just before each of its returns,
    and ``line_hooks[N]()`` each time line N is about to run.

    Each hook runs in a frame whose caller is the target's own frame, so it reads the
    target's locals with ``sys._getframe(1)``. A line's hook is called as a line event of
    ``sys.settrace`` would be: once for each run of the line's instructions, and for a
    line that a loop jumps back into (a ``for`` line), once each time it does, and so
    once per pass of the loop.
    """
    from bytecode import Bytecode, Instr, Label

    line_hooks = line_hooks or {}
    bc = Bytecode.from_code(code)
    items: list[Any] = list(bc)
    where = {id(item): i for i, item in enumerate(items) if isinstance(item, Label)}
    looped = {
        id(item.arg)
        for i, item in enumerate(items)
        if isinstance(item, Instr) and isinstance(item.arg, Label) and where[id(item.arg)] < i
    }
    # Where each line hook goes: before the first real instruction of each run of the
    # line, or, when the run holds a label a later jump goes back to, after that label
    # (the first pass falls through it, so one call serves every pass).
    calls: dict[int, Any] = {}
    i = 0
    while i < len(items):
        item = items[i]
        line = item.lineno if isinstance(item, Instr) else None
        hook = line_hooks.get(line) if isinstance(line, int) else None
        if hook is None or item.name in ("RESUME", "NOP", "CACHE"):
            i += 1
            continue
        start = i
        target = None
        while i < len(items):
            nxt = items[i]
            if isinstance(nxt, Instr) and nxt.lineno != line:
                break
            if isinstance(nxt, Label) and id(nxt) in looped and target is None:
                target = i + 1
            i += 1
        at = target if target is not None else start
        while at < i and not isinstance(items[at], Instr):
            at += 1
        # The end of a for loop is the for line's too, but not a pass over it: and on
        # 3.12+ an exhausted FOR_ITER jumps just past END_FOR, into whatever is put before it.
        if at < i and items[at].name not in _LOOP_EXITS:
            calls[at] = hook
    out: list[Any] = []
    for i, item in enumerate(items):
        if i in calls:
            out.extend(_hook_call(calls[i], items[i].location))
        if (
            return_hook is not None
            and isinstance(item, Instr)
            and item.name in ("RETURN_VALUE", "RETURN_CONST")
        ):
            out.extend(_hook_call(return_hook, item.location))
        out.append(item)
    bc[:] = out
    return bc.to_code()


def with_return_hook(code: types.CodeType, hook: Any) -> types.CodeType:
    """Return a copy of code that calls ``hook()`` just before each of its returns."""
    return with_hooks(code, hook)
