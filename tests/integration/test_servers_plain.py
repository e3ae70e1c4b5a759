"""A plain process with the README's one line: SIGTERM with the default action (no
``atexit`` runs) still takes it off the fleet at once, and it dies of the signal as before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import redis

from diagnose_redis import SpecStore
from support.app_servers import wait_until

PROGRAM = (
    "import time, diagnose_redis\n"
    "diagnose_redis.start()\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_sigterm_takes_a_plain_process_off_the_fleet(redis_url: str, prefix: str) -> None:
    """Killed by SIGTERM, the process leaves no status, heartbeat or claim behind."""
    env = {**os.environ, "DIAGNOSE_REDIS_URL": redis_url, "DIAGNOSE_PREFIX": prefix,
           "DIAGNOSE_PROCESS_ID": "plain-1"}  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    store = SpecStore(client, prefix)
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: set(store.fleet()) == {"plain-1"}, 10, "plain-1 online")
        proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGTERM
        assert store.fleet() == {}
        assert client.exists(f"{prefix}:status:plain-1", f"{prefix}:claim:plain-1") == 0
        assert client.zcard(f"{prefix}:processes") == 0
        assert b"Traceback" not in errors
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        client.close()
