"""start(), stop() and fork: one subscriber per process, and a child that reports at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import diagnose_redis
from diagnose_redis import SpecStore
from diagnose_redis._status.family import forked
from support.waiting import wait_for

TARGET = f"{__name__}.target"


def target(x: int) -> int:
    """Return x minus one: the function these tests probe."""
    return x - 1


@pytest.fixture
def store(redis_url: str, prefix: str) -> Iterator[SpecStore]:
    """A store on the session's (flushed) Redis."""
    client = redis.Redis.from_url(redis_url)
    yield SpecStore(client, prefix)
    client.close()


def spec() -> dict[str, Any]:
    """Return a test instrument spec on target."""
    return {"target": TARGET, "instrument": {"type": "test", "name": "t", "value": "result"}}


def test_stop_removes_the_status_at_once(store: SpecStore, redis_url: str, prefix: str, manager):
    """diagnose_redis.stop(), for shutdown hooks, takes the process off the live list."""
    sub = diagnose_redis.start(redis_url, prefix=prefix, manager=manager, process_id="hook-1")
    assert wait_for(lambda: "hook-1" in store.processes())
    diagnose_redis.stop()
    assert not sub.running and store.processes() == {} and store.status() == {}
    diagnose_redis.stop()  # a second call does nothing


def test_bare_fork_child_reports_inherited_probes(
    store: SpecStore, redis_url: str, prefix: str, manager
) -> None:
    """After os.fork() the child reports the probe it inherited as applied, under its own
    id, at once, without a publish; the parent reports itself as a parent of one child."""
    sub = diagnose_redis.start(redis_url, prefix=prefix, manager=manager, process_id="bare")
    try:
        store.put("inherited", spec())
        stored = store.get("inherited")
        assert stored is not None
        lm = stored["lastmodified"]

        def applied(process_id: str) -> bool:
            entry = store.status("inherited").get(process_id, {}).get("inherited")
            if not entry:
                return False
            return entry["err"] is None and entry["lm"] == lm

        assert wait_for(lambda: applied("bare"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: its subscriber works in its threads until it is killed
            try:
                threading.Event().wait(30)
            finally:
                os._exit(0)
        try:
            child_id = f"bare:{pid}"
            assert wait_for(lambda: applied(child_id), 2), store.status("inherited")
            assert store.status()[child_id]["_process"]["pid"] == pid
            assert wait_for(lambda: store.fleet()["bare"].parent)
            assert store.fleet()["bare"].children == 1
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        # Its child gone, the parent is a process again (from its next status write on).
        assert forked.role_info() == {"role": "process"}
    finally:
        sub.stop()


FORK_AT_START = """
import os, signal, socket, sys, time, warnings
import diagnose_redis
warnings.simplefilter("ignore", DeprecationWarning)
stuck = 0
for _ in range(10):
    diagnose_redis.start(sys.argv[1], prefix="forks")
    pid = os.fork()  # while the subscriber's threads connect
    if pid == 0:
        socket.getaddrinfo("localhost", 80)  # what a host does; the idna codec on first use
        os._exit(0)
    deadline = time.monotonic() + 5
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            stuck += 1
            break
        time.sleep(0.01)
    diagnose_redis.stop()
print("stuck", stuck)
"""


def test_fork_while_connecting_never_hangs_the_child(redis_url: str) -> None:
    """A child forked while the subscriber connects can look up host names (no import lock
    of the parent's threads is left held in it)."""
    url = redis_url.replace("127.0.0.1", "localhost")
    result = subprocess.run(
        [sys.executable, "-c", FORK_AT_START, url], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stuck 0"


LATE_HANDLER = """
import os, threading, time, warnings
from diagnose import fork
warnings.simplefilter("ignore", DeprecationWarning)
# A module imported after diagnose that holds a lock across fork() and reinitialises it in
# the child, as logging does: its at-fork handler runs after diagnose's.
lock = threading.Lock()
os.register_at_fork(
    before=lock.acquire, after_in_parent=lock.release, after_in_child=lock._at_fork_reinit
)
took = []

@fork.after_fork_in_child(fork.SERVICES)
def service():
    # What a service's thread does first: take a lock some library reinitialises at fork.
    thread = threading.Thread(target=lambda: took.append(lock.acquire(timeout=3)))
    thread.start()
    thread.join()

pid = os.fork()
if pid == 0:
    deadline = time.monotonic() + 10
    while not took and time.monotonic() < deadline:
        time.sleep(0.01)
    os._exit(0 if took == [True] else 1)
print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_services_start_in_the_child_once_fork_has_returned() -> None:
    """The child's services (its subscriber's threads) start after every at-fork handler has
    run, those of modules imported later too: before, a thread they started could take a
    lock such a handler had yet to reinitialise (logging's) and wait on it for ever."""
    result = subprocess.run(
        [sys.executable, "-c", LATE_HANDLER], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "child exit 0", result.stderr


CHILD_STARTS_ITS_OWN = """
import os, sys, time, warnings
import diagnose_redis
from diagnose_redis import _lifecycle
warnings.simplefilter("ignore", DeprecationWarning)
diagnose_redis.start(sys.argv[1], prefix=sys.argv[2])
pid = os.fork()
if pid == 0:
    # A post_fork hook that starts the subscriber itself, before the restart has run.
    own = diagnose_redis.start(sys.argv[1], prefix=sys.argv[2])
    deadline = time.monotonic() + 10
    while _lifecycle._parent is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    ok = _lifecycle._parent is None and diagnose_redis.start() is own and own.running
    diagnose_redis.stop()
    os._exit(0 if ok else 1)
print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
diagnose_redis.stop()
"""


def test_a_child_that_starts_its_own_subscriber_runs_that_one(redis_url: str, prefix: str) -> None:
    """A child whose code calls start() before the restart after fork runs keeps that
    subscriber: the restart does not start a second one."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD_STARTS_ITS_OWN, redis_url, prefix],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "child exit 0", result.stderr
