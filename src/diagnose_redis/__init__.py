"""The fleet subscriber of diagnose-fleet: specs over Redis pub/sub, status per process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from diagnose_redis.exceptions import (
    BadURL,
    DiagnoseRedisError,
    SpecIdError,
    UnsupportedURL,
    WireError,
)
from diagnose_redis.protocol import Keys, check_spec_id, expired_channel

if TYPE_CHECKING:
    from diagnose_redis._lifecycle import start, stop
    from diagnose_redis._subscriber.listener import Subscriber
    from diagnose_redis.connection.urls import connect, connect_async, database, redact_url
    from diagnose_redis.publisher.store import SpecStore

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
    "SpecStore": ".publisher.store",
    "Subscriber": "._subscriber.listener",
    "start": "._lifecycle",
    "stop": "._lifecycle",
    "connect": ".connection.urls",
    "connect_async": ".connection.urls",
    "database": ".connection.urls",
    "redact_url": ".connection.urls",
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
