"""Labels and selection: parsing DIAGNOSE_LABELS, the select schema, the rule, the mirror."""

from __future__ import annotations

import json
from typing import Any

import pytest

import diagnose
from diagnose import SpecError, validate_spec
from diagnose_redis._subscriber.mirror import Mirror
from diagnose_redis._subscriber.work_items import Event, Snapshot
from diagnose_redis.exceptions import WireError
from diagnose_redis.protocol import decode_spec, encode_spec
from diagnose_redis.protocol.labels import escape_glob, labels_of, parse_labels, selects
from support.probes import decoded_spec

TARGET = f"{__name__}.target"


def target(x: int) -> int:
    """Return x times three: the function these tests probe."""
    return x * 3


def spec() -> dict[str, Any]:
    """Return a spec on target as a subscriber decodes it."""
    return decoded_spec(TARGET)


def test_parse_labels_reads_pairs_and_refuses_junk() -> None:
    """DIAGNOSE_LABELS is name=value pairs; a pair without '=' or a bad name is refused."""
    assert parse_labels(" service=shop, env=prod ,") == {"service": "shop", "env": "prod"}
    assert parse_labels(None) == {} and parse_labels("") == {}
    for bad in ("service", "=shop", "bad name=x"):
        with pytest.raises(ValueError, match="name=value"):
            parse_labels(bad)


def test_labels_always_hold_process_and_host() -> None:
    """process and host are always set, and cannot be overridden by the given labels."""
    labels = labels_of({"service": "shop", "process": "liar"}, "web-1", "box")
    assert labels == {"service": "shop", "process": "web-1", "host": "box"}


@pytest.mark.parametrize(
    ("select", "chosen"),
    [
        (None, True),
        ({}, True),
        ({"service": "shop"}, True),
        ({"service": "shop", "process": "web-*"}, True),
        ({"service": "shop", "process": "cron-*"}, False),
        ({"service": "sh?p", "env": "prod"}, False),
        ({"process": ["cron-1", "web-[12]"]}, True),
        ({"missing": "*"}, False),
    ],
)
def test_selects_needs_every_label_to_match(select: Any, chosen: bool) -> None:
    """Every label of a select must match its glob (or one of its globs)."""
    labels = {"service": "shop", "process": "web-1", "host": "h"}
    assert selects(select, labels) is chosen


def test_escape_glob_matches_the_text_alone() -> None:
    """An escaped id matches itself and nothing its glob characters would."""
    pattern = escape_glob("web[1]*?")
    assert selects({"process": pattern}, {"process": "web[1]*?"})
    assert not selects({"process": pattern}, {"process": "web1xx"})


def test_select_is_validated_and_kept() -> None:
    """validate_spec keeps a sound select (an empty one is none) and names a bad one."""
    assert "select" not in validate_spec(spec())
    clean = validate_spec({**spec(), "select": {"service": "shop", "process": ["a", "b"]}})
    assert clean["select"] == {"service": "shop", "process": ["a", "b"]}
    assert "select" not in validate_spec({**spec(), "select": {}})
    for bad, words in (
        ("shop", "a map"),
        ({"bad name": "x"}, "invalid label name"),
        ({"service": 3}, "select.service"),
        ({"service": []}, "select.service"),
        ({"service": ""}, "select.service"),
    ):
        with pytest.raises(SpecError, match=words):
            validate_spec({**spec(), "select": bad})


def test_select_travels_on_the_wire() -> None:
    """An encoded spec decodes with its select; a malformed select is a malformed message."""
    body = {**spec(), "select": {"service": "shop"}}
    assert decode_spec("a", encode_spec("a", body))["select"] == {"service": "shop"}
    with pytest.raises(WireError, match="select"):
        decode_spec("a", encode_spec("a", {**spec(), "select": {"service": 1}}))


@pytest.fixture
def shop_mirror() -> Any:
    mgr = diagnose.ProbeManager()
    mgr.instrument_classes["test"] = diagnose.ProbeTestInstrument
    mirror = Mirror(mgr, "web-1", {"service": "shop", "host": "h"})
    yield mirror
    with mgr.lock:
        mgr.specs.clear()
        mgr.apply()


def _merge(mirror: Mirror, *items: Any) -> dict[str, Any]:
    with mirror.manager.lock:
        report = mirror.merge(list(items)) or {}
    return {k: None if v is None else json.loads(v) for k, v in report.items()}


def test_mirror_ignores_a_spec_that_does_not_select_it(shop_mirror: Mirror) -> None:
    """A spec selecting other processes is neither applied nor reported."""
    report = _merge(shop_mirror, Event("put", "b", 1, {**spec(), "select": {"service": "bill"}}))
    assert report == {} and shop_mirror.owned == set()
    assert TARGET not in diagnose.probes.active_probes and target(1) == 3
    snapshot = Snapshot(2, {"b": {**spec(), "select": {"service": "bill"}}})
    assert _merge(shop_mirror, snapshot) == {} and shop_mirror.owned == set()


def test_mirror_removes_a_spec_whose_select_stops_choosing_it(shop_mirror: Mirror) -> None:
    """A spec applied under a select that chose it is removed when its select changes."""
    chosen = {**spec(), "select": {"service": "shop", "process": "web-*"}}
    report = _merge(shop_mirror, Event("put", "a", 1, chosen))
    assert report["a"]["err"] is None and shop_mirror.owned == {"a"}
    moved = {**spec(), "select": {"process": "cron-*"}}
    assert _merge(shop_mirror, Event("put", "a", 2, moved)) == {"a": None}
    assert shop_mirror.owned == set() and TARGET not in diagnose.probes.active_probes
