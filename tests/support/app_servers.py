"""Real application servers (gunicorn, Celery) serving the example shop, for the integration
tests: their environment, their processes, and what their fleet reports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import redis

from diagnose_redis import SpecStore
from support.cli import coordinator, tool
from support.fleet import EXAMPLES
from support.waiting import wait_until

# coordinator, tool and wait_until live in support.cli and support.waiting; the app server
# tests take them from here with the rest.
__all__ = (
    "EXAMPLES",
    "Server",
    "applied_by",
    "children",
    "coordinator",
    "elapsed_since",
    "free_port",
    "server_and_store",
    "server_env",
    "stop",
    "tool",
    "wait_until",
    "workers",
)


class Server(Protocol):
    """An application server these tests start: its process is proc."""

    proc: subprocess.Popen[Any]


S = TypeVar("S", bound=Server)


def free_port() -> int:
    """Return a free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """Return the environment of a server process of the shop on this Redis and prefix."""
    env = {
        **os.environ,
        "DIAGNOSE_REDIS_URL": redis_url,
        "DIAGNOSE_PREFIX": prefix,
        "PYTHONPATH": str(EXAMPLES),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    for name in ("DIAGNOSE_SECRET", "DIAGNOSE_PROCESS_ID"):
        if name not in extra:
            env.pop(name, None)
    return env


def children(pid: int) -> set[int]:
    """Return the pids of a process's children."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def workers(store: SpecStore) -> dict[str, dict[str, Any]]:
    """Return the live processes that are not pre-fork parents, with their ``_process``."""
    fleet = store.fleet()
    return {pid: entry.info for pid, entry in fleet.items() if not entry.parent}


def applied_by(store: SpecStore, spec_id: str, process_ids: set[str]) -> bool:
    """Tell whether every process in process_ids reports spec_id applied at its current lm."""
    spec = store.get(spec_id)
    if spec is None or not process_ids:
        return False
    report = store.status(spec_id)
    for process_id in process_ids:
        entry = report.get(process_id, {}).get(spec_id)
        if not entry or entry["err"] is not None or entry["lm"] != spec["lastmodified"]:
            return False
    return True


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """SIGTERM a server and wait for it; kill it (and fail) if it does not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args!r} did not stop on SIGTERM within {timeout}s")


def elapsed_since(start: float) -> float:
    """Return the seconds since a time.monotonic() value."""
    return time.monotonic() - start


@contextmanager
def server_and_store(
    redis_url: str, prefix: str, start: Callable[[], S]
) -> Iterator[tuple[S, SpecStore]]:
    """Start a server with start() and give it with a store on its fleet; at the end kill the
    server if it still runs and close the store's client."""
    client = redis.Redis.from_url(redis_url)
    server = start()
    try:
        yield server, SpecStore(client, prefix)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        client.close()
