"""Turn command-line flags and spec files into validated specs, before anything is written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from coordinator._errors import BadInput
from diagnose import SpecError, validate_spec
from diagnose.clock import utcnow
from diagnose_redis import SpecIdError
from diagnose_redis import check_spec_id as wire_check

__all__ = (
    "DEFAULT_LIFESPAN",
    "check_spec_id",
    "parse_custom",
    "parse_lifespan",
    "parse_select",
    "spec_from_flags",
    "specs_from_file",
    "with_select",
)

DEFAULT_LIFESPAN = 10.0
_NO_LIFESPAN = {"none", "never", "null", "inf", "infinite"}


def check_spec_id(spec_id: object) -> str:
    """Return a spec ID, or raise BadInput if the wire format does not allow it."""
    try:
        return wire_check(spec_id)
    except SpecIdError as exc:
        raise BadInput(f"invalid spec ID: {exc}")


def parse_lifespan(text: str) -> float | None:
    """Read --lifespan: minutes as a positive number (fractions allowed), or 'none'."""
    if text.strip().lower() in _NO_LIFESPAN:
        return None
    try:
        minutes = float(text)
    except ValueError:
        raise BadInput(f"--lifespan must be a number of minutes or 'none', not {text!r}")
    if not math.isfinite(minutes) or minutes <= 0:
        raise BadInput(f"--lifespan must be a positive number of minutes, not {text!r}")
    return minutes


def parse_custom(text: str | None) -> dict[str, Any]:
    """Read --custom: a JSON object."""
    if text is None:
        return {}
    try:
        custom = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"--custom is not valid JSON: {exc.msg} at character {exc.pos}")
    if not isinstance(custom, dict):
        raise BadInput(f"--custom must be a JSON object, not {type(custom).__name__}")
    return custom


def parse_select(values: tuple[str, ...] | list[str]) -> dict[str, str | list[str]]:
    """Read repeated --select LABEL=GLOB; a label given twice matches either glob."""
    select: dict[str, str | list[str]] = {}
    for text in values:
        label, sep, glob = text.partition("=")
        label, glob = label.strip(), glob.strip()
        if not sep or not label or not glob:
            raise BadInput(f"--select must be LABEL=GLOB, like service=shop, not {text!r}")
        if label in select:
            before = select[label]
            select[label] = [*(before if isinstance(before, list) else [before]), glob]
        else:
            select[label] = glob
    return select


def with_select(
    spec_id: str, spec: dict[str, Any], select: dict[str, str | list[str]]
) -> dict[str, Any]:
    """Add --select's labels to a spec's own select; refuse a label both give differently."""
    if not select:
        return spec
    own = dict(spec.get("select") or {})
    for label, globs in select.items():
        if label in own and own[label] != globs:
            raise BadInput(
                f"invalid spec {spec_id!r}: --select {label}= contradicts its select.{label}"
            )
        own[label] = globs
    return _validate(spec_id, {**spec, "select": own})


def _validate(spec_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return validate_spec(spec)
    except SpecError as exc:
        raise BadInput(f"invalid spec {spec_id!r}: {exc}")


def spec_from_flags(
    spec_id: str,
    *,
    target: str,
    itype: str,
    value: str | None,
    name: str | None,
    event: str,
    lifespan: float | None,
    custom: dict[str, Any],
    line: int | None = None,
    rate: float | None = None,
    frames: int | None = None,
    first: int | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Build and validate one spec from publish's flags (``line`` for event "line";
    ``rate``, ``frames``, ``first`` and ``by`` set ``custom``'s; the value of a snapshot or
    an exception probe may be None: always capture)."""
    check_spec_id(spec_id)
    if rate is not None:
        custom = {**custom, "rate": int(rate) if float(rate).is_integer() else rate}
    for key, given in (("frames", frames), ("first", first), ("by", by)):
        if given is not None:
            custom = {**custom, key: given}
    instrument: dict[str, Any] = {
        "type": itype,
        "name": name or spec_id,
        "value": value,
        "event": event,
        "custom": custom,
    }
    if line is not None:
        instrument["line"] = line
    spec = {
        "target": target,
        "instrument": instrument,
        "lifespan": lifespan,
        "lastmodified": utcnow(),
    }
    return _validate(spec_id, spec)


def _load_document(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"no such file: {path}")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}")
    import yaml  # only for spec files: a few hundredths of a second of every command's start

    try:
        # YAML 1.1 is a superset of the JSON people write, so one parser reads both.
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "parse error"
        raise BadInput(f"{path} is not valid JSON or YAML: {problem}{where}")


def specs_from_file(path: Path) -> dict[str, dict[str, Any]]:
    """Read a JSON or YAML map of ID to spec and validate every spec in it.

    A spec without ``lifespan`` gets DEFAULT_LIFESPAN; an explicit null means it never
    expires. ``lastmodified`` is always set to now, and ``instrument.name`` defaults to the ID.
    """
    document = _load_document(path)
    if not isinstance(document, dict) or not document:
        raise BadInput(f"{path} must hold a non-empty map of spec ID to spec")
    now = utcnow()
    specs: dict[str, dict[str, Any]] = {}
    for spec_id, raw in document.items():
        check_spec_id(spec_id)
        if not isinstance(raw, dict):
            raise BadInput(f"invalid spec {spec_id!r}: a spec must be a map")
        spec = dict(raw)
        spec.pop("applied", None)
        spec["lastmodified"] = now
        spec.setdefault("lifespan", DEFAULT_LIFESPAN)
        instrument = spec.get("instrument")
        if isinstance(instrument, dict) and "name" not in instrument:
            spec["instrument"] = {**instrument, "name": spec_id}
        specs[spec_id] = _validate(spec_id, spec)
    return specs
