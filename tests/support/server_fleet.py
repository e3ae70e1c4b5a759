"""One scenario for every application server: boot with a probe live, serve, lose a worker,
lose Redis, stop.

Each server test starts its server (gunicorn, uvicorn, uWSGI) on the slow shop
(``server_apps.slowshop``, a module that takes a second to import), on a Redis of the test's
own, with a ``log`` probe on ``server_apps.slowshop.total`` published before the boot, and
runs :func:`run_scenario`: the workers come online and apply the probe (the master of a
pre-forking server is not counted), serve with it, a killed worker's replacement applies it,
a Redis restart is survived (the probe published again is applied and fires), and SIGTERM
(uWSGI: SIGINT) stops the whole server within a deadline, with no traceback and no entry
left in Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore
from diagnose_redis.protocol import STATUS_TTL_SECONDS
from support.app_servers import EXAMPLES, applied_by, children, wait_until, workers

__all__ = ("PROBE", "TESTS", "Server", "publish_probe", "run_scenario", "server_env")

TESTS = Path(__file__).resolve().parents[1]
PROBE = "slow-total"
TARGET = "server_apps.slowshop.total"
#: What a request answers first (then the pid of the worker that answered).
TOTAL = "2.2"
#: Seconds a server has to stop on SIGTERM; the stop itself takes one or two.
STOP_SECONDS = 15.0
#: What must never be in a server's output.
FORBIDDEN = (
    "Traceback",
    "Exception ignored",
    "Cannot switch to a different thread",
    "LoopExit",
    "after ssl has already been imported",
)


def server_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """Return the environment of a server of the slow shop on this Redis and prefix."""
    env = {
        **os.environ,
        "DIAGNOSE_REDIS_URL": redis_url,
        "DIAGNOSE_PREFIX": prefix,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(EXAMPLES)]),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    for name in ("DIAGNOSE_SECRET", "DIAGNOSE_PROCESS_ID"):
        if name not in extra:
            env.pop(name, None)
    return env


def publish_probe(store: SpecStore) -> None:
    """Publish the log probe on the slow shop's total (no lifespan)."""
    import datetime as dt

    store.put(
        PROBE,
        {
            "target": TARGET,
            "instrument": {"type": "log", "name": PROBE, "value": "result", "event": "return"},
            "lifespan": None,
            "lastmodified": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        },
    )


class Server:
    """A server process of the slow shop, its output in a file, answering on a port."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        port: int,
        log: Path,
        *,
        stop_signal: int = signal.SIGTERM,
        master_is_parent: bool = True,
    ) -> None:
        self.command = command
        self.port = port
        self.log = log
        self.stop_signal = stop_signal
        #: whether the process started is the workers' parent (uvicorn --workers: a supervisor)
        self.master_is_parent = master_is_parent
        self.seen: set[int] = set()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(TESTS)
            )

    def output(self) -> str:
        """Return what the server and its workers wrote so far."""
        return self.log.read_text(errors="replace")

    def get(self) -> tuple[str, int]:
        """Ask for the cart's total; return it and the pid of the worker that answered."""
        url = f"http://127.0.0.1:{self.port}/"
        with urllib.request.urlopen(url, timeout=5) as response:
            total, pid = response.read().decode().split()
        return total, int(pid)

    def answers(self) -> bool:
        """Tell whether a request gets the shop's answer now."""
        try:
            return self.get()[0] == TOTAL
        except OSError:
            return False

    def worker_pids(self) -> set[int]:
        """Return the pids of the processes serving (the master's children)."""
        try:
            pids = {pid for pid in children(self.proc.pid) if not _helper(pid)}
        except OSError:
            pids = set()  # the master is gone
        self.seen |= pids
        return pids

    def leftovers(self) -> set[int]:
        """Return the workers ever seen that still run (a master gone may leave some)."""
        return {pid for pid in self.seen if _running(pid)}

    def kill(self) -> None:
        """Kill the server and its workers (the test's clean-up)."""
        for pid in [*self.worker_pids(), *self.leftovers(), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)


def _helper(pid: int) -> bool:
    """Tell whether a child is a helper, not a worker (multiprocessing's resource tracker,
    which uvicorn's supervisor starts)."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _running(pid: int) -> bool:
    """Tell whether a process runs (and is not a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _pids(live: dict[str, dict[str, Any]]) -> set[int]:
    return {int(str(info["pid"])) for info in live.values() if "pid" in info}


def _online(server: Server, store: SpecStore, count: int) -> bool:
    """Tell whether exactly the server's count workers are online, having applied the probe."""
    try:
        live = workers(store)
        pids = server.worker_pids()
        return len(pids) == count and _pids(live) == pids and applied_by(store, PROBE, set(live))
    except redis.ConnectionError:
        return False


def _fleet_text(server: Server, store: SpecStore) -> Callable[[], str]:
    def text() -> str:
        try:
            fleet = store.fleet()
            status = store.status()
        except redis.RedisError as exc:
            fleet, status = {}, {"error": {"": str(exc)}}
        return (
            f"\nfleet: {fleet}\nstatus: {status}\nworkers: {server.worker_pids()}"
            f"\noutput:\n{server.output()[-4000:]}"
        )

    return text


def run_scenario(
    server: Server,
    redis_server: RedisServer,
    prefix: str,
    *,
    count: int = 2,
    boot_seconds: float = 30.0,
    exit_hook_may_not_run: bool = False,
) -> None:
    """Run the whole scenario on a server started with the probe already published.

    exit_hook_may_not_run: the server does not always run a worker's exit hooks when it
    stops it (uWSGI and ``uwsgi.atexit``): what such a worker leaves must then go with its
    TTL, and the coordinator's pruning, instead of at once."""
    client = redis.Redis.from_url(redis_server.url)
    store = SpecStore(client, prefix)
    details = _fleet_text(server, store)
    try:
        # Booted with the probe live: every worker applies it; the master is not counted.
        wait_until(lambda: _online(server, store, count), boot_seconds, "workers online", details)
        parents = [e for e in store.fleet().values() if e.parent]
        assert all(int(str(e.info.get("pid"))) == server.proc.pid for e in parents), details()
        assert len(workers(store)) == count, details()
        wait_until(server.answers, 10, "an answer", details)
        wait_until(lambda: f"Probe ({PROBE}) = {TOTAL}" in server.output(), 5, "a probe line")

        # A worker killed outright: its replacement applies the probe by itself.
        victim = sorted(server.worker_pids())[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: victim not in server.worker_pids() and _online(server, store, count),
            boot_seconds,
            "the respawned worker online with the probe",
            details,
        )

        # Redis restarted empty: the workers reconnect, and apply the probe published again.
        redis_server.stop()
        redis_server.start()
        publish_probe(store)
        wait_until(lambda: _online(server, store, count), 20, "workers back after Redis", details)
        mark = server.output().count(f"Probe ({PROBE}) = {TOTAL}")
        wait_until(server.answers, 10, "an answer after the Redis restart", details)
        wait_until(
            lambda: server.output().count(f"Probe ({PROBE}) = {TOTAL}") > mark,
            5,
            "a probe line after the Redis restart",
            details,
        )

        # Stopped: within the deadline, leaving nothing in Redis and no traceback.
        server.proc.send_signal(server.stop_signal)
        try:
            server.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"not stopped within {STOP_SECONDS}s: {details()}") from None
        wait_until(lambda: not server.leftovers(), 5, "the workers gone", details)
        wait_until(lambda: store.fleet() == {}, 5, "no live process left", details)

        def leftover() -> list[str]:
            return sorted(
                key.decode()
                for pattern in (f"{prefix}:status:*", f"{prefix}:claim:*")
                for key in client.scan_iter(match=pattern)
            )

        if exit_hook_may_not_run and leftover():
            wait_until(lambda: not leftover(), STATUS_TTL_SECONDS + 5, "leftovers expired", details)
            store.prune_processes()
        assert leftover() == [], f"left in Redis: {leftover()}{details()}"
        assert client.zcard(f"{prefix}:processes") == 0, details()
        output = server.output()
        for text in FORBIDDEN:
            assert text not in output, f"{text!r} in the server's output:\n{output[-6000:]}"
    finally:
        if server.proc.poll() is None:
            server.kill()
        client.close()
