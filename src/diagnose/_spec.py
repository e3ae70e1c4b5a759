"""The spec: what one instrument on one target is, validated the same way everywhere."""

from __future__ import annotations

import ast
import datetime as _dt
import functools
import math
from collections.abc import Mapping
from typing import Any

from .exceptions import ExpressionRefused, SpecError

__all__ = (
    "EVENTS",
    "MAX_EXPRESSION_CHARS",
    "MAX_LIFESPAN_MINUTES",
    "check_expression",
    "compile_eval",
    "compile_expression",
    "expires_at",
    "to_utc",
    "validate_spec",
)

EVENTS = ("call", "return", "end")
MAX_EXPRESSION_CHARS = 4096
MAX_LIFESPAN_MINUTES = 366 * 24 * 60
_INSTRUMENT_FIELDS = {"type", "name", "value", "event", "internal", "custom"}


def is_dotted_path(target: object) -> bool:
    """Return True for a dotted path of two or more identifiers, like 'pkg.module.func'."""
    if not isinstance(target, str):
        return False
    parts = target.split(".")
    return len(parts) >= 2 and all(part.isidentifier() for part in parts)


DOTTED_PATH_ERROR = "target must be a dotted path like 'pkg.module.func', not {!r}"


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


def to_utc(value: _dt.datetime) -> _dt.datetime:
    """Return an aware UTC datetime; naive values are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=_dt.UTC)
    return value.astimezone(_dt.UTC)


def expires_at(spec: Mapping[str, Any]) -> _dt.datetime | None:
    """Return when a spec's instrument stops firing (aware UTC), or None if never."""
    lifespan = spec.get("lifespan")
    if lifespan is None:
        return None
    return to_utc(spec["lastmodified"]) + _dt.timedelta(minutes=lifespan)


def validate_spec(
    spec: object,
    *,
    known_types: Any = None,
    require_lastmodified: bool = True,
) -> dict[str, Any]:
    """Check a spec and return a normalised copy; raise SpecError naming the problem.

    The copy has ``instrument.event`` set (``internal`` turned into its event),
    ``custom`` a dict, and ``applied`` a dict. ``known_types``, if given, is the
    collection of instrument types accepted.
    """
    if not isinstance(spec, Mapping):
        raise SpecError(f"a spec must be a map, not {type(spec).__name__}")
    target = spec.get("target")
    if not is_dotted_path(target):
        raise SpecError(DOTTED_PATH_ERROR.format(target))

    instrument = spec.get("instrument")
    if not isinstance(instrument, Mapping):
        raise SpecError("instrument must be a map with type, name and value")
    unknown = set(instrument) - _INSTRUMENT_FIELDS
    if unknown:
        raise SpecError(f"instrument has unknown field(s): {', '.join(sorted(map(repr, unknown)))}")
    itype = instrument.get("type")
    if not isinstance(itype, str) or not itype:
        raise SpecError("instrument.type must be a non-empty string")
    if known_types is not None and itype not in known_types:
        raise SpecError(
            f"unknown instrument type {itype!r} (known: {', '.join(sorted(known_types))})"
        )
    name = instrument.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("instrument.name must be a non-empty string")
    compile_expression(instrument.get("value"), "value", f"<probe {name}>")

    event = instrument.get("event")
    internal = instrument.get("internal")
    if internal is not None and not isinstance(internal, bool):
        raise SpecError("instrument.internal must be true or false")
    if event is None:
        event = "end" if internal else "return"
    elif event not in EVENTS:
        raise SpecError(f"instrument.event must be one of {', '.join(EVENTS)}, not {event!r}")
    elif internal is not None and (event == "end") != internal:
        raise SpecError(f"instrument.internal={internal} contradicts event={event!r}")

    custom = instrument.get("custom")
    if custom is None:
        custom = {}
    if not isinstance(custom, Mapping):
        raise SpecError("instrument.custom must be a map")
    if custom.get("tags") is not None:
        compile_expression(custom["tags"], "custom.tags", f"<probe {name}>")

    lifespan = spec.get("lifespan")
    if lifespan is not None:
        if isinstance(lifespan, bool) or not isinstance(lifespan, int | float):
            raise SpecError(f"lifespan must be a number of minutes or null, not {lifespan!r}")
        if not math.isfinite(lifespan) or lifespan <= 0:
            raise SpecError(f"lifespan must be a positive number of minutes, not {lifespan!r}")
        if lifespan > MAX_LIFESPAN_MINUTES:
            raise SpecError(
                f"lifespan must be at most {MAX_LIFESPAN_MINUTES} minutes (a year), "
                f"not {lifespan!r}"
            )

    lastmodified = spec.get("lastmodified")
    if lastmodified is None and not require_lastmodified:
        lastmodified = _dt.datetime.now(_dt.UTC)
    if not isinstance(lastmodified, _dt.datetime):
        raise SpecError("lastmodified must be a datetime")

    applied = spec.get("applied")
    if applied is None:
        applied = {}
    if not isinstance(applied, Mapping):
        raise SpecError("applied must be a map")

    clean_instrument = {
        "type": itype,
        "name": name,
        "value": instrument["value"],
        "event": event,
        "custom": dict(custom),
    }
    return {
        "target": target,
        "instrument": clean_instrument,
        "lifespan": lifespan,
        "lastmodified": lastmodified,
        "applied": dict(applied),
    }
