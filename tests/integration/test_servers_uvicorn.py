"""uvicorn on its own: ``--workers`` (a supervisor and its spawned workers), and one process
restarted at once under a configured id.

uvicorn ends a graceful shutdown by raising SIGTERM again with the handler it found (the
default action): neither ``atexit`` nor a shutdown hook runs then, and the subscriber must
still leave the fleet, and give its id up for the next process.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis

from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore
from support.app_servers import free_port, tool, wait_until
from support.server_fleet import (
    STOP_SECONDS,
    TESTS,
    Server,
    publish_probe,
    run_scenario,
    server_env,
)


def uvicorn(redis_server: RedisServer, prefix: str, log: Path, *args: str, **env: str) -> Server:
    """Start uvicorn on the slow shop's ASGI app, the probe published first."""
    client = redis.Redis.from_url(redis_server.url)
    publish_probe(SpecStore(client, prefix))
    client.close()
    port = free_port()
    command = [tool("uvicorn"), "server_apps.asgi:app", "--port", str(port), *args]
    return Server(command, server_env(redis_server.url, prefix, **env), port, log)


def test_uvicorn_workers_boot_with_a_probe_live_and_stop_clean(
    private_redis: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """uvicorn --workers 2: the workers apply the live probe, a killed one is replaced, a
    Redis restart is survived, SIGTERM leaves nothing."""
    server = uvicorn(private_redis, prefix, tmp_path / "uvicorn.log", "--workers", "2")
    run_scenario(server, private_redis, prefix)


def test_uvicorn_restarted_at_once_keeps_its_configured_id(
    private_redis: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """A uvicorn stopped by SIGTERM gives its id up: started again at once, it is web-1."""
    client = redis.Redis.from_url(private_redis.url)
    store = SpecStore(client, prefix)
    try:
        for run in range(2):
            log = tmp_path / f"uvicorn-{run}.log"
            server = uvicorn(private_redis, prefix, log, DIAGNOSE_PROCESS_ID="web-1")
            try:
                wait_until(
                    lambda: set(store.fleet()) == {"web-1"},
                    20,
                    f"run {run} online as web-1",
                    lambda s=server: f"{store.fleet()}\n{s.output()}",  # type: ignore[misc]
                )
                assert "held by another live process" not in server.output()
                server.proc.send_signal(signal.SIGTERM)
                code = server.proc.wait(STOP_SECONDS)
                # uvicorn dies of the SIGTERM it raises again, as without the subscriber.
                assert code in (0, -signal.SIGTERM), server.output()
                assert store.fleet() == {}
                assert client.exists(f"{prefix}:claim:web-1") == 0, server.output()
                assert "Traceback" not in server.output()
            finally:
                if server.proc.poll() is None:
                    server.kill()
    finally:
        client.close()


def test_a_killed_process_id_is_free_for_its_restart_at_once(
    private_redis: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """Killed outright (SIGKILL: nothing runs), a process's configured id goes to the
    process started after it on the same host at once, not after the claim lapses."""
    client = redis.Redis.from_url(private_redis.url)
    store = SpecStore(client, prefix)
    try:
        first = uvicorn(private_redis, prefix, tmp_path / "a.log", DIAGNOSE_PROCESS_ID="web-1")
        wait_until(lambda: set(store.fleet()) == {"web-1"}, 20, "web-1 online", first.output)
        first.proc.kill()
        first.proc.wait(5)
        second = uvicorn(private_redis, prefix, tmp_path / "b.log", DIAGNOSE_PROCESS_ID="web-1")
        try:
            wait_until(
                lambda: (
                    set(store.fleet()) == {"web-1"}
                    and store.fleet()["web-1"].info.get("pid") == second.proc.pid
                ),
                10,
                "the restarted process online as web-1",
                lambda: f"{store.fleet()}\n{second.output()}",
            )
            assert "held by another live process" not in second.output()
        finally:
            second.proc.send_signal(signal.SIGTERM)
            try:
                second.proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                second.kill()
    finally:
        client.close()


assert TESTS.is_dir()
