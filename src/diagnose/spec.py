"""The spec: what one instrument on one target is, validated the same way everywhere, and
whether it changed.

The schema only: expressions are checked by the expression policy, times by ``clock``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import marshal
import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from diagnose._gate.gate import MAX_RATE
from diagnose._safety.expressions import check_expression, default_policy
from diagnose._safety.verdicts import Memo
from diagnose.clock import to_utc
from diagnose.exceptions import SpecError

__all__ = (
    "CONDITION_TYPES",
    "DEFAULT_FIRST",
    "DEFAULT_FRAMES",
    "EVENTS",
    "MAX_FIRST",
    "MAX_FRAMES",
    "LABEL_NAME",
    "MAX_LIFESPAN_MINUTES",
    "ValidatedSpecs",
    "content_key",
    "is_dotted_path",
    "spec_changed",
    "spec_key",
    "validate_select",
    "validate_spec",
)

EVENTS = ("call", "return", "end", "line")
#: Instrument types whose value is an optional condition (None means always).
CONDITION_TYPES = frozenset({"snapshot", "exception"})
#: Frames an exception instrument captures per exception, and captures per fingerprint
#: (across the fleet): by default, and at most.
DEFAULT_FRAMES = 5
DEFAULT_FIRST = 3
MAX_FRAMES = 50
MAX_FIRST = 100
MAX_LIFESPAN_MINUTES = 366 * 24 * 60
_INSTRUMENT_FIELDS = {"type", "name", "value", "event", "internal", "custom", "line"}
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]{0,62}$")


def is_dotted_path(target: object) -> bool:
    """Return True for a dotted path of two or more identifiers, like 'pkg.module.func'."""
    if type(target) is str:
        return _dotted(target)  # a target is checked at every apply: once per text
    return isinstance(target, str) and _dotted.__wrapped__(str(target))


@functools.lru_cache(maxsize=256)
def _dotted(target: str) -> bool:
    parts = target.split(".")
    return len(parts) >= 2 and all(part.isidentifier() for part in parts)


def _is_map(value: object) -> TypeGuard[Mapping[Any, Any]]:
    return type(value) is dict or isinstance(value, Mapping)


def validate_select(select: object) -> dict[str, str | list[str]] | None:
    """Check a spec's ``select``: a map of label name to a glob, or to a list of globs (any
    may match); return a copy, or None for no selection (None or an empty map)."""
    if select is None:
        return None
    if not isinstance(select, Mapping):
        raise SpecError(f"select must be a map of label name to glob, not {select!r}")
    clean: dict[str, str | list[str]] = {}
    for label, globs in select.items():
        if not isinstance(label, str) or not LABEL_NAME.match(label):
            raise SpecError(f"select has an invalid label name {label!r}")
        many = isinstance(globs, list | tuple)
        items = list(globs) if many else [globs]
        if not items or not all(isinstance(g, str) and g for g in items):
            raise SpecError(f"select.{label} must be a glob or a list of globs, not {globs!r}")
        clean[label] = items if many else items[0]
    return clean or None


DOTTED_PATH_ERROR = "target must be a dotted path like 'pkg.module.func', not {!r}"


def validate_spec(
    spec: object,
    *,
    known_types: Any = None,
    require_lastmodified: bool = True,
    policy: Any = "default",
) -> dict[str, Any]:
    """Check a spec and return a normalised copy; raise SpecError naming the problem.

    The copy has ``instrument.event`` set (``internal`` turned into its event),
    ``custom`` a dict, and ``applied`` a dict. ``known_types``, if given, is the
    collection of instrument types accepted. Expressions are checked against ``policy``
    (a ``Policy``; None: syntax only; by default the safe policy's static rules, unless
    DIAGNOSE_EXPRESSIONS=trusted).
    """
    if not _is_map(spec):
        raise SpecError(f"a spec must be a map, not {type(spec).__name__}")
    target = spec.get("target")
    if not is_dotted_path(target):
        raise SpecError(DOTTED_PATH_ERROR.format(target))

    instrument = spec.get("instrument")
    if not _is_map(instrument):
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
    value = instrument.get("value")
    if value is None and itype in CONDITION_TYPES:
        value = "True"  # their value is an optional condition
    if policy == "default":
        policy = default_policy()
    check_expression(value, "value", policy)

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
    line = instrument.get("line")
    if event == "line":
        if isinstance(line, bool) or not isinstance(line, int) or line < 1:
            raise SpecError(
                f"a line instrument needs instrument.line, a line number of the target's "
                f"source file, not {line!r}"
            )
    elif line is not None:
        raise SpecError(f"instrument.line is only for event 'line', not {event!r}")
    if itype == "exception" and event != "return":
        raise SpecError(
            f"an exception instrument fires when the target raises: its event is return, "
            f"not {event!r}"
        )

    custom = instrument.get("custom")
    if custom is None:
        custom = {}
    if not _is_map(custom):
        raise SpecError("instrument.custom must be a map")
    if custom.get("tags") is not None:
        check_expression(custom["tags"], "custom.tags", policy)
    for field, most in (("frames", MAX_FRAMES), ("first", MAX_FIRST)):
        count = custom.get(field) if itype == "exception" else None
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= most
        ):
            raise SpecError(f"custom.{field} must be an integer from 1 to {most}, not {count!r}")
    if custom.get("by") is not None:  # the groups of stats and distinct
        check_expression(custom["by"], "custom.by", policy)
    rate = custom.get("rate")
    if rate is not None and (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not math.isfinite(rate)
        or not 0 < rate <= MAX_RATE
    ):
        raise SpecError(
            f"custom.rate must be a number of events per second above 0 and at most "
            f"{MAX_RATE}, not {rate!r}"
        )

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

    lastmodified, applied = _stamps(spec, require_lastmodified)

    select = validate_select(spec.get("select"))

    clean_instrument = {
        "type": itype,
        "name": name,
        "value": value,
        "event": event,
        "custom": dict(custom),
    }
    if line is not None:
        clean_instrument["line"] = line
    clean = {
        "target": target,
        "instrument": clean_instrument,
        "lifespan": lifespan,
        "lastmodified": lastmodified,
        "applied": dict(applied),
    }
    if select is not None:
        clean["select"] = select
    return clean


# Did a spec change? A spec changed when any of its fields other than ``applied`` did.
# Values that are their own snapshot: most of a spec, returned at once.
_ATOMS = frozenset({str, int, float, bool, type(None), bytes})


def _freeze(value: Any) -> Any:
    cls = type(value)
    if cls in _ATOMS:
        return value
    if cls is dict or isinstance(value, Mapping):
        items = [
            (k if type(k) in _ATOMS else _freeze(k), v if type(v) in _ATOMS else _freeze(v))
            for k, v in value.items()
        ]
        try:
            return ("map", frozenset(items))
        except TypeError:  # an unhashable value (a bytearray): compared in a stable order
            return ("map", tuple(sorted(items, key=repr)))
    if isinstance(value, list | tuple):
        return ("seq", tuple(_freeze(v) for v in value))
    if isinstance(value, set | frozenset):
        return ("set", frozenset(_freeze(v) for v in value))
    if isinstance(value, _dt.datetime):
        return to_utc(value)
    return value


def spec_key(spec: Any) -> Any:
    """Return a snapshot of what makes a spec's instrument (every field but ``applied``);
    two specs changed apart when their keys differ. None for what is not a mapping."""
    if not isinstance(spec, Mapping):
        return None
    return _freeze({k: v for k, v in spec.items() if k != "applied"})


def spec_changed(a: Any, b: Any) -> bool:
    """Tell whether spec b differs from spec a (None meaning no spec)."""
    if a is None or b is None:
        return a is not b
    if a is b:
        return False
    # The common change, a new version of a spec, shows in lastmodified: no snapshot needed.
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        before, after = a.get("lastmodified"), b.get("lastmodified")
        if (
            isinstance(before, _dt.datetime)
            and isinstance(after, _dt.datetime)
            and to_utc(before) != to_utc(after)
        ):
            return True
    return bool(spec_key(a) != spec_key(b))


def content_key(spec: Mapping[str, Any]) -> Any:
    """Return a snapshot of a spec's content: every field but ``lastmodified`` and
    ``applied``. Equal snapshots mean equal content; specs of equal content may still get
    different ones (another order of keys, say): then a change is seen where there is none,
    never the other way round."""
    content = dict(spec)
    content.pop("applied", None)
    content.pop("lastmodified", None)
    try:
        # The wire's types (str, numbers, None, bools, lists, maps) as bytes, in C; format
        # 2, the last whose bytes depend on the values alone (3 marks objects referred to
        # twice, and interned strings, by their reference counts).
        return marshal.dumps(content, 2)
    except ValueError:  # another type (a datetime in custom): the general snapshot
        return _freeze(content)


class ValidatedSpecs:
    """validate_spec() for a manager, its outcome kept by content (``content_key``) and
    policy: a spec whose content passed before is checked again in its ``lastmodified``
    and ``applied`` only, and its type against known_types. Refusals are not kept; what
    passed under a policy passes under it later (an allowlist only grows). Bounded."""

    def __init__(self, size: int = 256) -> None:
        self._passed = Memo(size)

    def validate(
        self, spec: Mapping[str, Any], content: Any, *, known_types: Any, policy: Any
    ) -> dict[str, Any]:
        """Return validate_spec(spec, known_types=..., policy=...), content being its
        content_key(); raise SpecError as it does."""
        key = (content, policy)
        passed = self._passed.get(key)
        if passed is None or passed["instrument"]["type"] not in known_types:
            clean = validate_spec(spec, known_types=known_types, policy=policy)
            self._passed.put(key, clean)
            return _fresh(clean, clean["lastmodified"], clean["applied"])
        lastmodified, applied = _stamps(spec, True)
        return _fresh(passed, lastmodified, dict(applied))


def _stamps(spec: Mapping[str, Any], require_lastmodified: bool) -> tuple[_dt.datetime, Any]:
    """Return a spec's lastmodified and applied, checked (what changes when the same
    content is published again); raise SpecError if one is wrong."""
    lastmodified = spec.get("lastmodified")
    if lastmodified is None and not require_lastmodified:
        lastmodified = _dt.datetime.now(_dt.UTC)
    if not isinstance(lastmodified, _dt.datetime):
        raise SpecError("lastmodified must be a datetime")
    applied = spec.get("applied")
    if applied is None:
        applied = {}
    if not _is_map(applied):
        raise SpecError("applied must be a map")
    return lastmodified, applied


def _fresh(clean: dict[str, Any], lastmodified: Any, applied: Any) -> dict[str, Any]:
    """Return a copy of a validated spec, with these lastmodified and applied, whose maps
    its user may change without changing clean."""
    instrument = clean["instrument"]
    return {
        **clean,
        "instrument": {**instrument, "custom": dict(instrument["custom"])},
        "lastmodified": lastmodified,
        "applied": applied,
    }
