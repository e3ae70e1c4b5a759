"""diagnose's public names are what it says (what ``import diagnose`` costs in a fresh
interpreter: tests/integration/test_imports.py)."""

from __future__ import annotations

import types

import diagnose


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
