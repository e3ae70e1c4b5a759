"""uWSGI, default mode and ``--lazy-apps``, with the README's one line at import.

uWSGI forks its workers from C, so Python's at-fork handlers never run in them. In the
default mode the master imports the application (and calls ``start()``): it must run no
subscriber and count as no process, each worker starting its own from uWSGI's post-fork
hook. With ``--lazy-apps`` each worker imports the application after the fork.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore
from support.app_servers import free_port, tool
from support.server_fleet import Server, publish_probe, run_scenario, server_env


@pytest.mark.parametrize("mode", ["default", "lazy-apps"])
def test_uwsgi_workers_boot_with_a_probe_live_and_stop_clean(
    mode: str, private_redis: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """The workers, not the master, come online with the one line, serve with the probe,
    respawn, survive a Redis restart and stop on SIGTERM (--die-on-term) leaving nothing."""
    client = redis.Redis.from_url(private_redis.url)
    publish_probe(SpecStore(client, prefix))
    client.close()
    port = free_port()
    command = [
        tool("uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--master", "--processes", "2",
        "--enable-threads", "--die-on-term", "--module", "server_apps.wsgi:app",
        *(["--lazy-apps"] if mode == "lazy-apps" else []),
    ]  # fmt: skip
    server = Server(command, server_env(private_redis.url, prefix), port, tmp_path / "uwsgi.log")
    # uWSGI 2.0.31 does not always call uwsgi.atexit in a worker it stops (one worker in
    # about every other run here): what that worker leaves goes with its TTL.
    run_scenario(server, private_redis, prefix, exit_hook_may_not_run=True)
