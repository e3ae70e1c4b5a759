"""One subscriber per process: start() and its settings, and what happens at fork and at exit."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from diagnose._fork import SERVICES, after_fork_in_child
from diagnose._text import one_line
from diagnose.managers import default_process_id

from ._mirror import Mirror
from ._subscriber import Subscriber

__all__ = ("start",)

log = logging.getLogger("diagnose_redis")

_lock = threading.Lock()
_current: Subscriber | None = None
_orphans: list[Subscriber] = []


def start(
    url: str | None = None,
    *,
    process_id: str | None = None,
    prefix: str | None = None,
    secret: str | bytes | None = None,
    manager: Any = None,
) -> Subscriber:
    """Start this process's subscriber (once: a second call returns the running one)."""
    global _current
    with _lock:
        if _current is not None and _current.running and _current.pid == os.getpid():
            return _current
        env = os.environ
        given = process_id or env.get("DIAGNOSE_PROCESS_ID") or None
        url = url or env.get("DIAGNOSE_REDIS_URL") or "redis://localhost:6379/0"
        try:
            subscriber = Subscriber(
                url,
                process_id=given or default_process_id(),
                prefix=prefix or env.get("DIAGNOSE_PREFIX") or "diagnose",
                secret=secret if secret is not None else env.get("DIAGNOSE_SECRET") or None,
                manager=manager,
                explicit_id=given is not None,
            )
            subscriber.start()
        except Exception as exc:
            # Never raise into the host: hand back a stopped subscriber that says why.
            log.warning("diagnose_redis could not start: %s", exc)
            subscriber = _Failed(url, process_id=given or default_process_id(), error=exc)
        _current = subscriber
        return subscriber


class _Failed(Subscriber):
    """A subscriber that could not start (a bad URL, say): stopped, with the error."""

    def __init__(self, url: str, *, process_id: str, error: BaseException) -> None:
        self.url = url
        self.process_id = process_id
        self.pid = os.getpid()
        self.error = one_line(error)
        self.stopped = threading.Event()
        self.stopped.set()
        self.connected = threading.Event()
        self.prefix = ""
        self.mirror = Mirror(None, process_id)

    def stop(self, timeout: float = 3.0) -> None:
        """Do nothing: it never started."""


@after_fork_in_child(SERVICES)
def _restart_in_child() -> None:
    """Start the child's own subscriber, under its own id, on the parent's manager."""
    global _current, _lock
    _lock = threading.Lock()
    parent = _current
    if parent is None or not parent.running:
        _current = None
        return
    # Keep the parent's objects alive, untouched: closing their sockets here could shut
    # down the parent's connections.
    _orphans.append(parent)
    _current = None
    try:
        lock = parent.manager.lock
        if lock.acquire(blocking=False):
            lock.release()
        else:
            parent.manager.lock = threading.RLock()
        process_id = (
            f"{parent.process_id}:{os.getpid()}" if parent.explicit_id else default_process_id()
        )
        child = Subscriber(
            parent.url,
            process_id=process_id,
            prefix=parent.prefix,
            secret=parent.secret,
            manager=parent.manager,
            explicit_id=parent.explicit_id,
        )
        child.mirror.owned = set(parent.owned)
        _current = child.start()
    except Exception as exc:
        log.debug("diagnose_redis could not restart after fork: %s", exc)


def _stop_at_exit() -> None:
    subscriber = _current
    if subscriber is not None and subscriber.running and subscriber.pid == os.getpid():
        subscriber.stop(timeout=1.0)


atexit.register(_stop_at_exit)
