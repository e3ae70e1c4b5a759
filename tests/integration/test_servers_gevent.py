"""gunicorn's gevent workers with the project's ``examples/gunicorn.conf.py``, booted again
and again with a probe live on the application's slow-importing module.

The subscriber used to start its threads in ``post_fork``, before gevent patches
``threading``; its listener then imported the application's module while gunicorn did, and
both waited on the module's lock for good (Python's deadlock detection cannot see it under
gevent). Every boot must come up, serve, and stop on SIGTERM within 15 s.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis

from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore
from support.app_servers import EXAMPLES, applied_by, free_port, tool, wait_until, workers
from support.server_fleet import FORBIDDEN, PROBE, Server, publish_probe, server_env

BOOTS = 3
STOP_SECONDS = 15.0


def test_gevent_workers_boot_three_times_with_a_probe_live(
    private_redis: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """Three boots in a row of 2 gevent workers: each applies the probe, answers, and the
    server stops on SIGTERM within 15 s with no traceback."""
    client = redis.Redis.from_url(private_redis.url)
    store = SpecStore(client, prefix)
    publish_probe(store)
    try:
        for boot in range(BOOTS):
            port = free_port()
            command = [
                tool("gunicorn"), "-k", "gevent", "-w", "2", "-b", f"127.0.0.1:{port}",
                "--no-control-socket", "--graceful-timeout", "3",
                "-c", str(EXAMPLES / "gunicorn.conf.py"), "server_apps.slowshop:app",
            ]  # fmt: skip
            server = Server(
                command, server_env(private_redis.url, prefix), port, tmp_path / f"{boot}.log"
            )
            try:
                wait_until(
                    lambda s=server: (  # type: ignore[misc]
                        len(s.worker_pids()) == 2
                        and len(workers(store)) == 2
                        and applied_by(store, PROBE, set(workers(store)))
                        and s.answers()
                    ),
                    30,
                    f"boot {boot}: 2 workers online with the probe, answering",
                    lambda s=server: f"{store.fleet()}\n{s.output()}",  # type: ignore[misc]
                )
                server.proc.send_signal(signal.SIGTERM)
                try:
                    server.proc.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    raise AssertionError(
                        f"boot {boot}: not stopped within {STOP_SECONDS}s:\n{server.output()}"
                    ) from None
                assert server.proc.returncode == 0, server.output()
                wait_until(lambda: store.fleet() == {}, 5, f"boot {boot}: nobody left")
                output = server.output()
                assert f"Probe ({PROBE}) = 2.2" in output
                for text in FORBIDDEN:
                    assert text not in output, f"boot {boot}: {text!r} in:\n{output}"
            finally:
                if server.proc.poll() is None:
                    server.kill()
    finally:
        client.close()
