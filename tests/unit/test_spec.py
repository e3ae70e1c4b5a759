"""diagnose.validate_spec: a good spec comes back normalised, a bad one gets a one-line error."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import diagnose
from diagnose import SpecError, validate_spec

LM = datetime.datetime(2024, 5, 1, 12, 0)


def spec(**changes: Any) -> dict[str, Any]:
    """A valid spec, with top-level fields or ``instrument.FIELD`` keys changed."""
    base: dict[str, Any] = {
        "target": "myapp.module.Class.method",
        "instrument": {"type": "log", "name": "myapp.method", "value": "result"},
        "lifespan": 10,
        "lastmodified": LM,
        "applied": {},
    }
    for key, value in changes.items():
        if key.startswith("instrument_"):
            base["instrument"][key[len("instrument_") :]] = value
        else:
            base[key] = value
    return base


def test_valid_spec_is_normalised() -> None:
    """A valid spec comes back with event, custom and applied filled in."""
    clean = validate_spec(spec())
    assert clean == {
        "target": "myapp.module.Class.method",
        "instrument": {
            "type": "log",
            "name": "myapp.method",
            "value": "result",
            "event": "return",
            "custom": {},
        },
        "lifespan": 10,
        "lastmodified": LM,
        "applied": {},
    }


@pytest.mark.parametrize(
    ("internal", "event"), [(True, "end"), (False, "return")], ids=["internal", "external"]
)
def test_internal_becomes_event(internal: bool, event: str) -> None:
    """instrument.internal is turned into the matching event."""
    assert validate_spec(spec(instrument_internal=internal))["instrument"]["event"] == event


@pytest.mark.parametrize("lifespan", [None, 0.02, 1, 60 * 24 * 365])
def test_lifespans_accepted(lifespan: float | None) -> None:
    """A lifespan may be None, a fraction of a minute, or long."""
    assert validate_spec(spec(lifespan=lifespan))["lifespan"] == lifespan


def test_validate_does_not_change_its_argument() -> None:
    """validate_spec returns a copy and leaves the spec it was given alone."""
    original = spec(instrument_internal=True)
    validate_spec(original)
    assert original == spec(instrument_internal=True)


def test_known_types() -> None:
    """With known_types, an instrument type outside them is refused, naming it."""
    assert validate_spec(spec(), known_types={"log": object})
    with pytest.raises(SpecError, match="nope"):
        validate_spec(spec(instrument_type="nope"), known_types=diagnose.manager.instrument_classes)


BAD = {
    "not a map": (["target"], "map"),
    "no target": (spec(target=None), "target"),
    "target not dotted": (spec(target="method"), "target"),
    "target with spaces": (spec(target="my app.f"), "target"),
    "instrument not a map": (spec(instrument="log"), "instrument"),
    "unknown instrument field": (spec(instrument_colour="red"), "colour"),
    "no type": (spec(instrument_type=None), "type"),
    "no name": (spec(instrument_name=""), "name"),
    "value not a string": (spec(instrument_value=3), "value"),
    "empty value": (spec(instrument_value="  "), "value"),
    "value does not compile": (spec(instrument_value="result +"), "compile"),
    "multi-line value": (spec(instrument_value="(result +\n\n"), "compile"),
    "dunder attribute": (spec(instrument_value="x.__class__"), "__class__"),
    "dunder name": (spec(instrument_value="__import__('os')"), "__import__"),
    "walrus": (spec(instrument_value="(y := 1)"), ":="),
    "value too long": (spec(instrument_value="1+" * 3000 + "1"), "longer"),
    "bad event": (spec(instrument_event="later"), "event"),
    "internal not bool": (spec(instrument_internal="yes"), "internal"),
    "internal contradicts event": (
        spec(instrument_internal=True, instrument_event="return"),
        "internal",
    ),
    "custom not a map": (spec(instrument_custom=["tags"]), "custom"),
    "tags do not compile": (spec(instrument_custom={"tags": "{"}), "tags"),
    "tags refused": (spec(instrument_custom={"tags": "{'a': x.__dict__}"}), "__dict__"),
    "lifespan a string": (spec(lifespan="10"), "lifespan"),
    "lifespan a bool": (spec(lifespan=True), "lifespan"),
    "lifespan zero": (spec(lifespan=0), "lifespan"),
    "lifespan negative": (spec(lifespan=-5), "lifespan"),
    "lifespan infinite": (spec(lifespan=float("inf")), "lifespan"),
    "lifespan nan": (spec(lifespan=float("nan")), "lifespan"),
    "lifespan past year 9999": (spec(lifespan=1e10), "lifespan"),
    "lastmodified a string": (spec(lastmodified="2024-05-01"), "lastmodified"),
    "no lastmodified": (spec(lastmodified=None), "lastmodified"),
    "applied not a map": (spec(applied=[]), "applied"),
    "field name with a newline": (spec(**{"instrument_bad\nfield": 1}), "field"),
}


@pytest.mark.parametrize(("bad", "word"), BAD.values(), ids=list(BAD))
def test_bad_field_gives_one_line_spec_error(bad: Any, word: str) -> None:
    """Each malformed field raises SpecError with one line of text naming the problem."""
    with pytest.raises(SpecError) as info:
        validate_spec(bad)
    message = str(info.value)
    assert word in message
    assert "\n" not in message and message.strip() == message
    assert len(message) < 300


def test_refused_expression_is_a_spec_error() -> None:
    """ExpressionRefused is a SpecError, so callers can catch one type."""
    assert issubclass(diagnose.ExpressionRefused, SpecError)
    with pytest.raises(diagnose.ExpressionRefused):
        validate_spec(spec(instrument_value="().__class__"))


def test_missing_lastmodified_allowed_when_not_required() -> None:
    """With require_lastmodified=False a spec without lastmodified gets the current time."""
    before = datetime.datetime.now(datetime.UTC)
    clean = validate_spec(spec(lastmodified=None), require_lastmodified=False)
    assert before <= clean["lastmodified"] <= datetime.datetime.now(datetime.UTC)
