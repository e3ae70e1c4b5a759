"""Redis as production runs it, for the ACL and TLS tests: a whole fleet's round trip (a
worker, every `coordinator` command, `serve`) over one URL."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import redis

from support.cli import COORDINATOR, coordinator, ok
from support.fleet import Worker
from support.waiting import wait_for

__all__ = ("exercise_fleet",)


def exercise_fleet(url: str, prefix: str, *, serve_says: str = "") -> None:
    """Run a worker, `coordinator serve` and every coordinator command over url; check each
    (serve's log must hold serve_says, and no warning)."""
    env = {**os.environ, "DIAGNOSE_REDIS_URL": url, "DIAGNOSE_PREFIX": prefix}
    env.pop("DIAGNOSE_SECRET", None)
    serve = subprocess.Popen(
        [COORDINATOR, "serve", "--sweep-interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = Worker(url, prefix, "--process-id", "w-1")
    worker_err = serve_err = ""
    try:
        assert serve.stderr is not None and "serving" in serve.stderr.readline()
        published = ok(
            coordinator(
                url,
                prefix,
                "publish",
                "p1",
                "-t",
                "fleet_worker.work",
                "--value",
                "x * 10",
                "--wait",
                "--timeout",
                "20",
            )
        )
        assert published.strip() == "p1"
        assert worker.call(2) == ["Probe (p1) = 20"]
        status = json.loads(ok(coordinator(url, prefix, "status", "p1", "--json")))
        assert status["processes"]["w-1"]["specs"]["p1"]["state"] == "applied", status
        listed = ok(coordinator(url, prefix, "list"))
        assert "p1" in listed and "fleet_worker.work" in listed
        assert "w-1" in ok(coordinator(url, prefix, "processes"))
        # serve turns the expired key into a removal the worker applies.
        ok(
            coordinator(
                url,
                prefix,
                "publish",
                "short",
                "-t",
                "fleet_worker.work",
                "--value",
                "x",
                "--lifespan",
                "0.02",
            )
        )
        client = redis.Redis.from_url(url)
        try:
            indexed = lambda: client.sismember(f"{prefix}:ids", "short")  # noqa: E731
            assert wait_for(lambda: not indexed(), 15, 0.05), "serve did not remove short"
        finally:
            client.close()
        assert ok(coordinator(url, prefix, "remove", "p1")) == "p1\n"
        assert wait_for(lambda: worker.call(2) == [], 10, 0.1)
        assert ok(coordinator(url, prefix, "list")).strip() == "No specs."
    finally:
        worker_err = worker.close()
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
        try:
            _, serve_err = serve.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.communicate()
    assert serve.returncode == 0, serve_err
    assert "published removal of short" in serve_err, serve_err
    assert "WARNING" not in serve_err and "ERROR" not in serve_err, serve_err
    # What serve says of the ACL comes from its expired-key listener, which a loaded machine
    # may not have run before the stop; when it did run, it said this (and never a warning).
    assert serve_says in serve_err or "expired-key" not in serve_err, serve_err
    assert "diagnose_redis (" not in worker_err, worker_err
