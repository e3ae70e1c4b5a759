"""A background apply never imports a target's module beside the host's own import.

The fleet subscriber applies in its own threads. A target whose module the host is
importing (partly initialised in ``sys.modules``), or, while the host boots, has not
imported yet, is left pending and tried again: importing it from the subscriber's thread
takes the module's lock beside the server's import (a deadlock for good under gevent) and
runs the module's code in the wrong thread.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from diagnose import ProbeManager, ProbeTestInstrument
from diagnose._swap.targets import import_in_progress, resolve, still_booting
from diagnose.exceptions import TargetImportError, TargetNotImported
from diagnose_redis._subscriber.mirror import Mirror
from diagnose_redis._subscriber.work_items import Snapshot
from diagnose_redis.protocol import decode_status_field

SLOW = """
import threading
GATE = threading.Event()
STARTED = __import__("builtins").__dict__.setdefault("_boot_imports_started", threading.Event())
STARTED.set()
assert GATE.wait(10) or True
def func(x):
    return x + 1
"""


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Path]:
    """A directory on sys.path for the modules a test writes; they are forgotten after."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(directory: Path, name: str, source: str = "def func(x):\n    return x + 1\n") -> str:
    (directory / f"{name}.py").write_text(source)
    return name


def test_a_module_not_imported_is_left_to_the_host_while_it_boots(modules: Path) -> None:
    """During the boot, a module nobody imported stays unimported; after it, it is."""
    name = write(modules, "boot_fresh_mod")
    with still_booting(time.monotonic() + 60), pytest.raises(TargetNotImported):
        resolve(f"{name}.func")
    assert name not in sys.modules
    with still_booting(time.monotonic() - 1):
        assert resolve(f"{name}.func")(1) == 2
    assert name in sys.modules


def test_a_missing_module_is_an_error_at_once(modules: Path) -> None:
    """A module that does not exist is no boot matter: the error says so at once."""
    with still_booting(time.monotonic() + 60), pytest.raises(TargetImportError):
        resolve("boot_no_such_module_anywhere.func")


def test_an_attribute_missing_from_an_imported_module_is_not_found(modules: Path) -> None:
    """An imported module without the attribute (and no such submodule) is an error."""
    name = write(modules, "boot_done_mod")
    __import__(name)
    with still_booting(time.monotonic() + 60), pytest.raises(AttributeError):
        resolve(f"{name}.nope")


def test_a_module_being_imported_is_pending_then_applies(modules: Path) -> None:
    """While another thread imports the module, its spec is pending (no error) and the
    subscriber takes no import lock; once the import is done, the same spec applies."""
    name = write(modules, "boot_slow_mod", SLOW)
    started = threading.Event()
    import builtins

    builtins.__dict__["_boot_imports_started"] = started
    importer = threading.Thread(target=__import__, args=(name,), daemon=True)
    importer.start()
    try:
        assert started.wait(10), "the host's import did not start"
        assert import_in_progress()
        manager = ProbeManager(process_id="boot")
        manager.instrument_classes["test"] = ProbeTestInstrument
        mirror = Mirror(manager, "boot")
        spec = {
            "target": f"{name}.func",
            "instrument": {"type": "test", "name": "boot", "value": "result"},
            "lifespan": None,
            "lastmodified": dt.datetime(2026, 1, 1),
        }
        with manager.lock:
            report = mirror.merge([Snapshot(1, {"s": spec})])
        assert report is not None
        pending = decode_status_field(report["s"] or "")
        assert (pending["lm"], pending["err"]) == (None, None)
        assert mirror.deferred == {"s"}
    finally:
        sys.modules[name].GATE.set()
        importer.join(10)
        del builtins.__dict__["_boot_imports_started"]
    with manager.lock:
        report = mirror.merge([])
    assert report is not None
    applied = decode_status_field(report["s"] or "")
    assert applied["err"] is None and applied["lm"] is not None
    assert mirror.deferred == set()
    assert sys.modules[name].func(1) == 2
    with manager.lock:
        manager.specs.clear()
        manager.apply()
