"""gunicorn for real: the subscriber in pre-forked workers, both ways the README shows.

``--preload`` with ``diagnose_redis.start()`` at import (``shop.wsgi``): the master is a
pre-fork parent and its workers' subscribers start after the fork. ``post_fork`` in
``examples/gunicorn.conf.py``: the master runs no subscriber at all.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from diagnose_redis import SpecStore
from diagnose_redis.protocol import STATUS_TTL_SECONDS
from support.app_servers import (
    EXAMPLES,
    applied_by,
    children,
    coordinator,
    free_port,
    server_and_store,
    server_env,
    stop,
    tool,
    wait_until,
    workers,
)

MODES = {
    "preload": ["--preload", "shop.wsgi:app"],
    "post_fork": ["-c", str(EXAMPLES / "gunicorn.conf.py"), "shop.web:app"],
}


class Gunicorn:
    """A gunicorn master with 2 shop workers, its output in a file."""

    def __init__(self, redis_url: str, prefix: str, mode: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.command = command = [
            tool("gunicorn"),
            "--no-control-socket",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{self.port}",
            "--graceful-timeout",
            "3",
            *MODES[mode],
        ]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                command, env=server_env(redis_url, prefix), stdout=out, stderr=subprocess.STDOUT
            )

    def get(self) -> tuple[str, int]:
        """Price a cart over HTTP; return the total and the pid of the worker that answered."""
        url = f"http://127.0.0.1:{self.port}/?items=apple:2,milk:1"
        with urllib.request.urlopen(url, timeout=5) as response:
            total, pid = response.read().decode().split()
        return total, int(pid)

    def output(self) -> str:
        """Return what gunicorn and its workers wrote so far."""
        return self.log.read_text(errors="replace")


@pytest.fixture(params=sorted(MODES))
def server(
    request: pytest.FixtureRequest, redis_url: str, prefix: str, tmp_path: Path
) -> Iterator[tuple[Gunicorn, SpecStore]]:
    """A gunicorn of the shop in one of the two modes, and a store on its fleet."""
    log = tmp_path / "gunicorn.log"
    with server_and_store(
        redis_url, prefix, lambda: Gunicorn(redis_url, prefix, request.param, log)
    ) as pair:
        yield pair


def pids_of(live: dict[str, dict[str, object]]) -> set[int]:
    """Return the pids the processes report."""
    return {int(str(info["pid"])) for info in live.values() if "pid" in info}


def test_gunicorn_workers_follow_probes_through_respawns(
    server: tuple[Gunicorn, SpecStore], redis_url: str, prefix: str
) -> None:
    """publish --wait counts only the workers; respawned and reloaded workers report the
    live probe applied by themselves; remove detaches everywhere; SIGTERM leaves nobody."""
    gunicorn, store = server
    master = gunicorn.proc.pid
    wait_until(
        lambda: pids_of(workers(store)) == children(master) and len(children(master)) == 2,
        20,
        "2 workers online",
        lambda: f"{gunicorn.output()}\nfleet: {store.fleet()}\nchildren: {children(master)}",
    )
    preload = "--preload" in gunicorn.command
    fleet = store.fleet()
    parents = [pid for pid, entry in fleet.items() if entry.parent]
    if preload:
        assert [fleet[p].info["pid"] for p in parents] == [master]
        wait_until(lambda: store.fleet()[parents[0]].children == 2, 10, "the parent's count")
    else:
        assert parents == [] and len(fleet) == 2

    result = coordinator(
        redis_url, prefix, "publish", "g1", "-t", "shop.pricing.total", "--value", "result",
        "--wait", "--timeout", "10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answered = set(re.findall(r"^(\S+)\s+g1\s+applied", result.stderr, re.M))
    assert answered == set(workers(store)), result.stderr
    for _ in range(4):
        assert gunicorn.get()[0] == "2.2"
    wait_until(lambda: gunicorn.output().count("Probe (g1) = 2.2") >= 4, 5, "probe lines")

    # A worker killed outright is offline at once, and its replacement applies the probe.
    victim = sorted(children(master))[0]
    (victim_id,) = [p for p, info in workers(store).items() if pids_of({p: info}) == {victim}]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in pids_of(workers(store)), 15, "the killed worker offline")
    # Offline for its closed connection, not for a heartbeat that aged out: its last one is
    # still recent enough to count as live.
    last = store.client.zscore(store.keys.processes, victim_id)
    assert last is not None and time.time() - last < STATUS_TTL_SECONDS, (last, time.time())
    wait_until(
        lambda: (
            len(children(master) - {victim}) == 2
            and pids_of(workers(store)) == children(master)
            and applied_by(store, "g1", set(workers(store)))
        ),
        15,
        "the respawned worker to apply g1",
    )

    # A reload replaces every worker; the new ones apply the live probe by themselves.
    before = children(master)
    gunicorn.proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: (
            not (children(master) & before)
            and len(children(master)) == 2
            and pids_of(workers(store)) == children(master)
            and applied_by(store, "g1", set(workers(store)))
        ),
        20,
        "the reloaded workers to apply g1",
    )
    status = store.status("g1")
    for process_id in workers(store):
        entry = status[process_id]["g1"]
        started = dt.datetime.fromisoformat(status[process_id]["_process"]["started"])
        # Applied by the new process itself, since it started.
        assert entry["err"] is None and entry["at"] >= started, (process_id, entry, started)
    assert gunicorn.get()[0] == "2.2"

    removed = coordinator(redis_url, prefix, "remove", "g1")
    assert removed.returncode == 0
    wait_until(
        lambda: all("g1" not in store.status().get(p, {}) for p in store.fleet()),
        5,
        "g1 detached in every live process",
    )
    mark = gunicorn.output().count("Probe (g1)")
    gunicorn.get()
    assert gunicorn.output().count("Probe (g1)") == mark

    assert stop(gunicorn.proc) == 0
    wait_until(lambda: store.fleet() == {}, 5, "no live process left")
    assert "Traceback" not in gunicorn.output()
