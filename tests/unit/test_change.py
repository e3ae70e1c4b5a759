"""Tests of diagnose.spec: the one answer to "did the spec change?"."""

from __future__ import annotations

import datetime as dt
from typing import Any

from diagnose.spec import spec_changed, spec_key

LM = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def spec(**changes: Any) -> dict[str, Any]:
    """Return a spec with some fields changed."""
    base: dict[str, Any] = {
        "target": "a.b",
        "instrument": {"type": "log", "name": "n", "value": "result", "custom": {"tags": "{}"}},
        "lifespan": 10,
        "lastmodified": LM,
        "applied": {},
    }
    base.update(changes)
    return base


def test_applied_and_key_order_do_not_count() -> None:
    """Specs that differ only in applied, or in the order of their keys, are the same."""
    a = spec(applied={"p": {"lm": LM, "err": None}})
    b = dict(reversed(list(spec().items())))
    assert not spec_changed(a, b)


def test_any_other_field_counts() -> None:
    """A change of target, lifespan, lastmodified, instrument or an extra field is a change."""
    a = spec()
    for b in (
        spec(target="a.c"),
        spec(lifespan=5),
        spec(lastmodified=LM + dt.timedelta(microseconds=1)),
        spec(instrument={**a["instrument"], "value": "x"}),
        spec(select={"role": "web"}),
    ):
        assert spec_changed(a, b)


def test_key_is_a_snapshot_of_nested_values() -> None:
    """A key kept from before still differs after the spec's instrument is edited in place."""
    a = spec()
    before = spec_key(a)
    a["instrument"]["custom"]["tags"] = "{'x': 1}"
    assert spec_key(a) != before


def test_naive_lastmodified_is_utc() -> None:
    """A naive lastmodified equals the same instant given in UTC or any other zone."""
    east = dt.timezone(dt.timedelta(hours=2))
    assert not spec_changed(spec(lastmodified=LM.replace(tzinfo=None)), spec())
    assert not spec_changed(spec(lastmodified=LM.astimezone(east)), spec())


def test_none_means_no_spec() -> None:
    """None against None is unchanged, None against a spec is a change."""
    assert not spec_changed(None, None)
    assert spec_changed(None, spec()) and spec_changed(spec(), None)


def test_unhashable_values_compare() -> None:
    """Values that cannot be hashed (a bytearray) still compare by value."""
    assert not spec_changed(spec(extra=bytearray(b"x")), spec(extra=bytearray(b"x")))
    assert spec_changed(spec(extra=bytearray(b"x")), spec(extra=bytearray(b"y")))
