"""The DogStatsD client behind hist and incr instruments, made on first use."""

from __future__ import annotations

import os
import threading
from typing import Any

from diagnose.fork import LOCKS, after_fork_in_child

__all__ = ("client", "configure")

_client: Any = None
_lock = threading.Lock()
_settings: dict[str, Any] = {}


@after_fork_in_child(LOCKS)
def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()


def configure(host: str | None = None, port: int | None = None, **options: Any) -> None:
    """Set where metrics go (default DIAGNOSE_STATSD_HOST:DIAGNOSE_STATSD_PORT, else
    127.0.0.1:8125); the next metric uses a new client."""
    global _client
    with _lock:
        _settings.clear()
        if host is not None:
            _settings["host"] = host
        if port is not None:
            _settings["port"] = int(port)
        _settings.update(options)
        if _client is not None:
            _client.close_socket()
        _client = None


def client() -> Any:
    """Return the process's DogStatsd client, creating it on first use."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                # datadog's package is slow to import (~0.1 s): keep it off `import diagnose`.
                from datadog.dogstatsd.base import DogStatsd

                settings: dict[str, Any] = {
                    "host": os.environ.get("DIAGNOSE_STATSD_HOST", "127.0.0.1"),
                    "port": int(os.environ.get("DIAGNOSE_STATSD_PORT", "8125")),
                    "disable_telemetry": True,
                    "origin_detection_enabled": False,
                }
                settings.update(_settings)
                _client = DogStatsd(**settings)
    return _client
