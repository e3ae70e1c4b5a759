"""The outbox: bounded, counted, fed by the instruments of specs only, empty after fork."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from diagnose import ProbeManager
from diagnose.outbox import Origin, Outbox, output_targets, stream_tags
from probe_targets import shop

TARGET = "probe_targets.shop.price"


@pytest.fixture
def mgr() -> Iterator[ProbeManager]:
    manager = ProbeManager(process_id="outbox-test")
    yield manager
    manager.specs.clear()
    manager.apply()


def put_spec(mgr: ProbeManager, spec_id: str, itype: str, value: Any, **inst: Any) -> None:
    mgr.specs[spec_id] = {
        "target": TARGET,
        "instrument": {"type": itype, "name": spec_id, "value": value, **inst},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
        "applied": {},
    }
    mgr.apply()
    assert mgr.specs[spec_id]["applied"]["outbox-test"]["err"] is None


def test_a_full_outbox_drops_and_counts_per_spec() -> None:
    """Past its entries or its bytes, an entry is dropped and counted under its spec."""
    box = Outbox(max_entries=3, max_bytes=1000)
    box.open()
    for i in range(5):
        box.put(Origin("a", "log"), "a", str(i), {})
    box.put(Origin("b", "log"), "b", "x", {})
    assert len(box) == 3 and box.dropped_counts() == {"a": 2, "b": 1}
    assert [e.value for e in box.take(10)] == ["0", "1", "2"]
    box.put(Origin("b", "log"), "b", "y" * 1000, {})
    box.put(Origin("b", "log"), "b", "z", {})
    assert [e.value[0] for e in box.take(10)] == ["y"] and box.dropped["b"] == 2
    box.put(Origin("b", "log"), "b", "after", {})
    assert [e.value for e in box.take(10)] == ["after"]


def test_a_closed_outbox_keeps_nothing_and_says_to_write_stdout() -> None:
    """No sender: nothing is kept or counted, and spec output goes to stdout whatever
    DIAGNOSE_OUTPUT says, so that it never vanishes."""
    box = Outbox()
    box.stdout = False
    box.put(Origin("a", "log"), "a", "1", {})
    assert len(box) == 0 and box.dropped == {} and box.to_stdout()
    box.open()
    assert not box.to_stdout()
    box.stream = False
    box.close()
    assert not box.open()


def test_many_threads_appending_stay_within_the_bound() -> None:
    """Appends from 8 threads at once never hold more than the bound; all are accounted."""
    box = Outbox(max_entries=500)
    box.open()

    def append() -> None:
        for i in range(1000):
            box.put(Origin("s", "log"), "s", str(i), {})

    threads = [threading.Thread(target=append) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(box) <= 500
    assert len(box) + box.dropped["s"] >= 8000 - 8  # a race may lose a count, no more


@pytest.mark.parametrize(
    ("text", "chosen"),
    [(None, {"stdout", "redis"}), ("redis", {"redis"}), (" stdout , REDIS", {"stdout", "redis"})],
)
def test_diagnose_output_is_read(text: str | None, chosen: set[str]) -> None:
    """DIAGNOSE_OUTPUT: stdout, redis or both, in any case and spacing."""
    assert output_targets(text) == chosen


def test_a_bad_diagnose_output_is_refused() -> None:
    """Anything else is an error naming the variable."""
    with pytest.raises(ValueError, match="DIAGNOSE_OUTPUT"):
        output_targets("kafka")


def test_tags_are_json_ready_and_redacted() -> None:
    """Numbers stay numbers; other values become their redacted text; secret keys redacted."""
    tags = stream_tags({"n": 3, "f": 0.5, "user": {"token": "t0k"}, "password": "p", 4: None})
    assert tags == {
        "n": 3,
        "f": 0.5,
        "user": "{'token': <redacted>}",
        "password": "<redacted>",
        "4": None,
    }


def test_instruments_of_specs_emit_what_they_output(outbox: Outbox, mgr: ProbeManager) -> None:
    """log values, snapshots and metric values of specs go to the outbox with their spec ID
    and type; a runtime error goes once."""
    put_spec(mgr, "lg", "log", "{'amount': amount, 'secret': 's'}", custom={"tags": "{'a': 1}"})
    put_spec(mgr, "sn", "snapshot", None, event="call")
    put_spec(mgr, "bad", "log", "amount / 0")
    shop.price(2)
    shop.price(3)
    by_spec: dict[str, list[Any]] = {}
    for entry in outbox.take(100):
        by_spec.setdefault(entry.spec, []).append(entry)
    assert [(e.type, e.name, e.value, dict(e.tags)) for e in by_spec["lg"]] == [
        ("log", "lg", "{'amount': 2, 'secret': <redacted>}", {"a": 1}),
        ("log", "lg", "{'amount': 3, 'secret': <redacted>}", {"a": 1}),
    ]
    (snap,) = by_spec["sn"]  # 1 a second
    assert snap.type == "snapshot" and snap.value == '{"amount":2,"rate":2,"discount":0}'
    (error,) = by_spec["bad"]
    assert error.type == "error" and error.value.startswith("ZeroDivisionError")


def test_instruments_made_in_code_do_not_emit(outbox: Outbox) -> None:
    """A probe the programmer made in code keeps its output to itself."""
    import diagnose

    with diagnose.sensor(TARGET, "amount") as sensor:
        shop.price(4)
    assert sensor.results == [4]
    assert len(outbox) == 0
