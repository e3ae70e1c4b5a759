"""``import diagnose`` stays cheap, and its public names are what it says."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import diagnose

HEAVY = ("redis", "msgpack", "datadog", "bytecode", "anyio", "click", "rich", "yaml")


def test_import_pulls_in_no_heavy_modules() -> None:
    """``import diagnose`` in a fresh interpreter imports none of the heavy dependencies."""
    code = "import json, sys, diagnose; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    modules = json.loads(out)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == []
    assert not any(m.startswith(("diagnose_redis", "coordinator")) for m in modules)


def test_all_names_exist() -> None:
    """Every name in diagnose.__all__ exists, and __all__ is a tuple without repeats."""
    assert isinstance(diagnose.__all__, tuple)
    assert len(set(diagnose.__all__)) == len(diagnose.__all__)
    missing = [name for name in diagnose.__all__ if not hasattr(diagnose, name)]
    assert missing == []


def test_all_lists_every_public_name() -> None:
    """Every public class and function diagnose defines at its top level is in __all__."""
    public = {
        name
        for name, value in vars(diagnose).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith("diagnose")
    }
    assert public - set(diagnose.__all__) == set()


def test_star_import_gives_all() -> None:
    """``from diagnose import *`` binds exactly the names in __all__."""
    namespace: dict[str, object] = {}
    exec("from diagnose import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(diagnose.__all__)


def test_breakpoints_load_on_demand() -> None:
    """diagnose.breakpoints is reachable as an attribute, with Breakpoint and do."""
    assert hasattr(diagnose.breakpoints, "Breakpoint")
    assert callable(diagnose.breakpoints.do)
