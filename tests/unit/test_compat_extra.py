"""Behaviours of the original diagnose (2.0 to 5.0.1) that issue 8 does not name.

Each test is written as a user of the original would rely on the behaviour, against
the public API only. See docs/differences.md for where each was read in the original
and what fix is proposed.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

import diagnose
from diagnose import managers, probes
from diagnose.instruments import LogInstrument, ProbeTestInstrument

MODULE = "compat_extra_targets"
NOW = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@pytest.fixture
def mod() -> Iterator[types.ModuleType]:
    module = types.ModuleType(MODULE)
    exec(
        "def nothing(x):\n    return None\ndef plus1(x):\n    return x + 1\n",
        module.__dict__,
    )
    sys.modules[MODULE] = module
    try:
        yield module
    finally:
        for target in [t for t in probes.active_probes if t.startswith(MODULE + ".")]:
            probes.active_probes.pop(target).stop()
        del sys.modules[MODULE]


def spec(target: str, type_: str = "test", value: str = "result", **more: Any) -> dict[str, Any]:
    return {
        "target": target,
        "instrument": {"type": type_, "name": "n", "value": value, "event": "return", "custom": {}},
        "lifespan": 10,
        "lastmodified": NOW,
        "applied": {},
        **more,
    }


def test_log_instrument_writes_nothing_for_a_none_value(mod: types.ModuleType) -> None:
    """5.0.1 instruments.py LogInstrument.fire: ``if v is None: return``."""
    probe = probes.attach_to(f"{MODULE}.nothing")
    probe.instruments["log"] = LogInstrument("n", "result")
    probe.start()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert mod.nothing(1) is None
    assert buf.getvalue() == ""


def test_types_registered_on_the_manager_class_reach_diagnose_manager(
    mod: types.ModuleType,
) -> None:
    """instrument_classes and global_namespace are class attributes, shared by managers."""
    mgr = diagnose.manager
    cls_types = managers.InstrumentManager.instrument_classes
    cls_names = managers.InstrumentManager.global_namespace
    try:
        cls_types["compat_test"] = ProbeTestInstrument
        cls_names["compat_offset"] = 100
        mgr.specs["compat-extra"] = spec(f"{MODULE}.plus1", "compat_test", "result + compat_offset")
        mgr.apply()
        assert mgr.specs["compat-extra"]["applied"][mgr.process_id]["err"] is None
        assert mod.plus1(1) == 2
        [instrument] = probes.active_probes[f"{MODULE}.plus1"].instruments.values()
        assert instrument.results == [102]
    finally:
        mgr.specs.pop("compat-extra", None)
        mgr.apply()
        cls_types.pop("compat_test", None)
        cls_names.pop("compat_offset", None)


def test_a_mark_override_with_the_original_signature(mod: types.ModuleType) -> None:
    """Subclasses (like the original's MongoDB manager) override mark(id, doc, exception)."""
    marks: list[tuple[str, bool]] = []

    class Recording(managers.InstrumentManager):
        # Untyped, as the original's subclasses are: its bool exception is narrower than
        # ProbeManager.mark's error (str | None), on purpose; __init_subclass__ sees the
        # parameter's name and _mark passes it a bool.
        def mark(self, id, doc, exception=False):
            marks.append((id, exception))

    mgr = Recording("p")
    mgr.instrument_classes["test"] = ProbeTestInstrument
    mgr.specs["good"] = spec(f"{MODULE}.plus1")
    mgr.specs["bad"] = spec(f"{MODULE}.nosuch")
    try:
        mgr.apply()
    finally:
        mgr.specs.clear()
        mgr.apply()
    assert sorted(marks) == [("bad", True), ("good", False)]


class FakeCollection:
    """The part of a pymongo collection the original's MongoDB manager used."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.updates: list[tuple[Any, Any]] = []

    def find(self) -> list[dict[str, Any]]:
        return self.docs

    def update_one(self, query: Any, update: Any) -> None:
        self.updates.append((query, update))


def test_mongodb_instrument_manager(mod: types.ModuleType) -> None:
    """managers.MongoDBInstrumentManager(process_id, collection, id_field="id")."""
    from diagnose.managers import MongoDBInstrumentManager

    doc = {"id": "m1", **spec(f"{MODULE}.plus1")}
    collection = FakeCollection([doc])
    mgr = MongoDBInstrumentManager("web.1", collection)
    mgr.instrument_classes["test"] = ProbeTestInstrument
    assert mgr.specs == {"m1": doc}
    mgr.apply()
    assert mod.plus1(1) == 2
    assert collection.updates == [
        ({"id": "m1"}, {"$set": {"applied.web_1": {"lm": NOW, "err": None}}})
    ]
    collection.docs.clear()
    mgr.apply()
    assert f"{MODULE}.plus1" not in probes.active_probes


def test_mag_of_an_infinite_size_is_minus_one() -> None:
    """managers.mag returns -1 for anything whose magnitude it cannot take."""
    assert managers.mag(float("inf")) == -1
    assert managers.mag(1000) == 3


def test_probes_module_has_calltime() -> None:
    """diagnose.probes.CallTime is the type of hotspots.worst and hotspots.slowest."""
    assert probes.CallTime._fields == ("time", "lineno", "source")


def test_patchlib_dotted_import_autocomplete() -> None:
    """diagnose.patchlib.dotted_import_autocomplete (5.0), for target pickers."""
    from diagnose.patchlib import dotted_import_autocomplete

    assert dotted_import_autocomplete("os.path.join") == ["os.path.join"]
    matches = dotted_import_autocomplete("os.path.jion")
    assert "os.path.join" in matches
    assert all(m.startswith("os.path.") for m in matches)


def test_editing_a_spec_keeps_its_instrument(mod: types.ModuleType) -> None:
    """The original updated name/value/event/custom/expires on the same instrument."""
    mgr = managers.InstrumentManager("p")
    mgr.instrument_classes["test"] = ProbeTestInstrument
    mgr.specs["s"] = spec(f"{MODULE}.plus1")
    try:
        mgr.apply()
        [first] = probes.active_probes[f"{MODULE}.plus1"].instruments.values()
        mod.plus1(1)
        mgr.specs["s"]["instrument"]["value"] = "result * 10"
        mgr.apply()
        mod.plus1(1)
        [second] = probes.active_probes[f"{MODULE}.plus1"].instruments.values()
        assert second is first
        assert first.results == [2, 20]
    finally:
        mgr.specs.clear()
        mgr.apply()
