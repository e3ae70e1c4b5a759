"""Snapshots: the state of a call as bounded, redacted JSON, never running user code."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

import diagnose
from diagnose import LogInstrument, ProbeManager, SpecError
from diagnose._output import snapshot
from diagnose.instruments import SnapshotInstrument
from probe_targets import shop
from support.probes import ProbeSet


@pytest.fixture
def probeset() -> Iterator[ProbeSet]:
    with ProbeSet() as ps:
        yield ps


class Node:
    """An object graph: nodes that reference each other, with a secret and a property."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.api_key = "sk-live-123"
        self.peers: list[Node] = []
        self._private = "hidden"

    @property
    def boom(self) -> str:
        raise AssertionError("a snapshot ran a property")

    def __repr__(self) -> str:
        raise AssertionError("a snapshot called __repr__")


def test_call_return_and_end_events_capture_what_they_offer(probeset: ProbeSet) -> None:
    """call: the arguments; return: also result and elapsed; end: the locals."""
    target = "probe_targets.shop.price"
    call = probeset.attach(target, None, "call", cls=SnapshotInstrument, name="c")
    ret = probeset.attach(target, None, "return", cls=SnapshotInstrument, name="r")
    end = probeset.attach(target, None, "end", cls=SnapshotInstrument, name="e")
    assert shop.price(3, discount=1) == 5
    assert call.last == {"amount": 3, "rate": 2, "discount": 1}
    assert set(ret.last) == {"amount", "rate", "discount", "result", "elapsed"}
    assert ret.last["result"] == 5
    assert end.last == {"amount": 3, "rate": 2, "discount": 1, "subtotal": 6}


def test_a_condition_decides_whether_to_capture(probeset: ProbeSet) -> None:
    """value is a condition: capture only when it is true."""
    inst = probeset.attach("probe_targets.shop.price", "amount > 5", cls=SnapshotInstrument)
    shop.price(1)
    assert inst.last is None
    shop.price(7)
    assert inst.last is not None and inst.last["amount"] == 7


def test_a_huge_graph_is_bounded_and_redacted() -> None:
    """A 10,000-item dict of objects that reference each other: at most 32 KiB, redacted,
    no user code run (what a capture costs: bench/probe_overhead.py)."""
    nodes = {f"n{i}": Node(f"n{i}") for i in range(10_000)}
    for i, node in enumerate(nodes.values()):
        node.peers = [nodes[f"n{(i + 1) % 10_000}"], nodes[f"n{(i + 7) % 10_000}"]]
    names = {"graph": nodes, "password": "hunter2", "headers": {"Authorization": "Bearer x"}}
    snap = snapshot.capture(names)
    text = snapshot.to_json(snap)
    assert len(text.encode()) <= snapshot.MAX_BYTES + 1024
    assert snap["password"] == "<redacted>"
    assert snap["headers"] == {"Authorization": "<redacted>"}
    first = snap["graph"]["n0"]
    assert first["@type"] == f"{__name__}.Node" and first["api_key"] == "<redacted>"
    assert "_private" not in first and "boom" not in first
    assert snap["@truncated"] is True
    assert "sk-live" not in text and "hunter2" not in text and "Bearer" not in text
    json.loads(text)


def test_bounds_depth_items_fields_and_strings() -> None:
    """depth 3, 100 items, 20 fields, 255 characters, each cut and said to be cut."""

    class Wide:
        pass

    wide = Wide()
    for i in range(30):
        setattr(wide, f"f{i}", i)
    snap = snapshot.capture(
        {
            "deep": {"a": {"b": {"c": {"d": 1}}}},
            "long": "x" * 1000,
            "many": list(range(500)),
            "wide": wide,
            "when": dt.datetime(2026, 1, 1),
            "big": 10**100,
        }
    )
    assert snap["deep"] == {"a": {"b": {"c": "<dict>"}}}
    assert len(snap["long"]) == 256 and snap["long"].endswith("…")
    assert len(snap["many"]) == 101 and snap["many"][-1] == "@truncated: 400 more items"
    assert len([k for k in snap["wide"] if k.startswith("f")]) == 20
    assert snap["when"] == "2026-01-01 00:00:00"
    assert snap["big"] == "<int of 333 bits>"
    assert snap["@truncated"] is True


def test_a_cycle_is_shown_not_followed() -> None:
    """A cycle is shown as <cycle: TYPE>, not followed."""
    loop: list[Any] = []
    loop.append(loop)
    assert snapshot.capture({"loop": loop}) == {"loop": ["<cycle: list>"]}


def test_snapshot_lines_go_where_log_lines_go(
    probeset: ProbeSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot instrument's line goes where log lines go, its value as JSON."""
    out = io.StringIO()
    monkeypatch.setattr(LogInstrument, "out", out)
    probeset.attach("probe_targets.shop.price", None, "call", cls=SnapshotInstrument, name="s")
    shop.price(2)
    line = out.getvalue()
    assert line.startswith("Snapshot (s) = ")
    assert json.loads(line[len("Snapshot (s) = ") :]) == {"amount": 2, "rate": 2, "discount": 0}


def test_snapshot_specs_default_to_one_per_second() -> None:
    """Through the manager, a snapshot spec (value optional) fires at most once a second."""
    mgr = ProbeManager(process_id="snap")
    spec: dict[str, Any] = {
        "target": "probe_targets.shop.price",
        "instrument": {"type": "snapshot", "name": "s", "event": "call"},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
    }
    mgr.specs["s"] = spec
    try:
        mgr.apply()
        assert spec["applied"][mgr.process_id]["err"] is None
        for amount in range(50):
            shop.price(amount)
        assert mgr.counters()["s"] == {"fired": 1, "dropped": 49, "errors": 0}
        [inst] = diagnose.probes.active_probes["probe_targets.shop.price"].instruments.values()
        assert inst.last == {"amount": 0, "rate": 2, "discount": 0}
    finally:
        mgr.specs.clear()
        mgr.apply()


def test_only_snapshots_may_leave_out_the_value() -> None:
    """A spec of another type than snapshot must have a value."""
    spec = {
        "target": "probe_targets.shop.price",
        "instrument": {"type": "log", "name": "s"},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
    }
    with pytest.raises(SpecError, match="value"):
        diagnose.validate_spec(spec)
