"""The fleet subscriber of diagnose-fleet: specs over Redis pub/sub, status per process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._wire import Keys, check_spec_id, expired_channel
from .exceptions import BadURL, DiagnoseRedisError, SpecIdError, UnsupportedURL, WireError

if TYPE_CHECKING:
    from ._connect import connect, connect_async, database, redact_url
    from ._process import start, stop
    from ._store import SpecStore
    from ._subscriber import Subscriber

__all__ = (
    "BadURL",
    "DiagnoseRedisError",
    "Keys",
    "SpecIdError",
    "SpecStore",
    "Subscriber",
    "UnsupportedURL",
    "WireError",
    "check_spec_id",
    "connect",
    "connect_async",
    "database",
    "expired_channel",
    "redact_url",
    "start",
    "stop",
)

_LAZY = {
    "SpecStore": "._store",
    "Subscriber": "._subscriber",
    "start": "._process",
    "stop": "._process",
    "connect": "._connect",
    "connect_async": "._connect",
    "database": "._connect",
    "redact_url": "._connect",
}


def __getattr__(name: str) -> Any:
    """Import the heavier parts (redis-py) only when they are first used."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value
