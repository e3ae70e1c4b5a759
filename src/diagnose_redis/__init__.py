"""The fleet subscriber of diagnose-fleet: specs over Redis pub/sub, status per process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._wire import Keys, WireError

if TYPE_CHECKING:
    from ._process import start
    from ._store import SpecStore
    from ._subscriber import Subscriber

__all__ = ("Keys", "SpecStore", "Subscriber", "WireError", "start")

_LAZY = {"SpecStore": "._store", "Subscriber": "._subscriber", "start": "._process"}


def __getattr__(name: str) -> Any:
    """Import the heavier parts (redis-py) only when they are first used."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value
