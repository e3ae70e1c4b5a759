"""gunicorn with each worker class, on an application that takes a while to import.

The probe is live before the boot, on the application's own module: each worker resolves
its target while gunicorn imports that module (with gevent, the subscriber used to
deadlock the import for good). ``post_fork`` is the project's ``examples/gunicorn.conf.py``;
``preload`` is the README's one line at import with ``--preload``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore
from support.app_servers import EXAMPLES, free_port, tool
from support.server_fleet import Server, publish_probe, run_scenario, server_env

WORKERS = {
    "sync": [],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "gevent": ["-k", "gevent"],
    "uvicorn": ["-k", "uvicorn.workers.UvicornWorker"],
}
APPS = {
    ("post_fork", False): ["-c", str(EXAMPLES / "gunicorn.conf.py"), "server_apps.slowshop:app"],
    ("post_fork", True): ["-c", str(EXAMPLES / "gunicorn.conf.py"), "server_apps.asgi:app"],
    ("preload", False): ["--preload", "server_apps.wsgi:app"],
    ("preload", True): ["--preload", "server_apps.asgi:app"],
}


def gunicorn(redis_server: RedisServer, prefix: str, worker: str, mode: str, log: Path) -> Server:
    """Start gunicorn with 2 workers of a class, the probe published first."""
    client = redis.Redis.from_url(redis_server.url)
    publish_probe(SpecStore(client, prefix))
    client.close()
    port = free_port()
    command = [
        tool("gunicorn"), "--no-control-socket", "-w", "2", "-b", f"127.0.0.1:{port}",
        "--graceful-timeout", "3", "--timeout", "20",
        *WORKERS[worker], *APPS[(mode, worker == "uvicorn")],
    ]  # fmt: skip
    return Server(command, server_env(redis_server.url, prefix), port, log)


@pytest.mark.parametrize(
    ("worker", "mode"),
    [
        ("sync", "post_fork"),
        ("gthread", "post_fork"),
        ("gevent", "post_fork"),
        ("gevent", "preload"),
        ("uvicorn", "preload"),
    ],
)
def test_workers_boot_with_a_probe_live_and_stop_clean(
    worker: str, mode: str, private_redis: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """Each worker class boots with the probe live, serves, respawns, survives a Redis
    restart and stops on SIGTERM leaving nothing."""
    server = gunicorn(private_redis, prefix, worker, mode, tmp_path / "gunicorn.log")
    run_scenario(server, private_redis, prefix)
