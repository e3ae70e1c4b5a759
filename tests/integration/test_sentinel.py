"""Sentinel end to end: a real primary, replica and Sentinel, and real failovers under workers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from diagnose_redis import SpecStore, connect
from support.cli import COORDINATOR, coordinator
from support.fleet import Worker, applied_everywhere, log_spec, put_retrying
from support.topologies import SentinelSet
from support.waiting import wait_for


@pytest.fixture(scope="module")
def sentinel_set() -> Iterator[SentinelSet]:
    """One primary, one replica and one Sentinel for the module."""
    topology = SentinelSet()
    try:
        yield topology.start()
    finally:
        topology.cleanup()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kill", [False, True], ids=["sentinel-failover", "primary-killed"])
def test_workers_follow_a_failover(sentinel_set: SentinelSet, prefix: str, kill: bool) -> None:
    """After a failover every worker applies a spec published after it, and no worker's host
    sees an error."""
    workers = [Worker(sentinel_set.url, prefix) for _ in range(3)]
    pids = [w.process_id for w in workers]
    store = SpecStore(connect(sentinel_set.url, socket_timeout=2), prefix)
    try:
        store.put("before", log_spec("before"))
        assert wait_for(lambda: applied_everywhere(store, "before", pids))
        old = sentinel_set.primary_address()
        new = sentinel_set.failover(kill=kill)
        assert new != old
        put_retrying(store, "after", log_spec("after", "x + 1"))
        assert wait_for(lambda: applied_everywhere(store, "after", pids), 30)
        calls = [w.call(1) for w in workers]
        assert calls == [["Probe (before) = 2", "Probe (after) = 2"]] * 3
    finally:
        errors = [w.close() for w in workers]
        store.client.close()
    assert errors == ["", "", ""]


def test_url_reaches_the_primary(sentinel_set: SentinelSet, prefix: str) -> None:
    """A Sentinel URL with a database number writes to that database of the primary."""
    url = sentinel_set.url.rsplit("/", 1)[0] + "/3"
    client = connect(url)
    try:
        client.set(f"{prefix}:probe", b"1")
        host, port = sentinel_set.primary_address()
        primary = next(n for n in sentinel_set.servers if n.port == port)
        assert primary.client(db=3).get(f"{prefix}:probe") == b"1"
    finally:
        client.close()


def test_coordinator_commands_over_sentinel(sentinel_set: SentinelSet, prefix: str) -> None:
    """`coordinator publish --wait`, `status` and `remove` work through a Sentinel URL."""
    worker = Worker(sentinel_set.url, prefix)
    try:
        done = coordinator(
            sentinel_set.url,
            prefix,
            "publish",
            "cli",
            "--target",
            "fleet_worker.work",
            "--value",
            "x",
            "--wait",
        )
        assert done.returncode == 0, done.stderr
        assert worker.call(4) == ["Probe (cli) = 4"]
        status = coordinator(sentinel_set.url, prefix, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert worker.process_id in status.stdout
        removed = coordinator(sentinel_set.url, prefix, "remove", "cli")
        assert removed.returncode == 0, removed.stderr
    finally:
        assert worker.close() == ""


def test_serve_over_sentinel_removes_expired_specs(sentinel_set: SentinelSet, prefix: str) -> None:
    """`coordinator serve` on a Sentinel URL turns an expired spec into a published removal."""
    env = {**os.environ, "DIAGNOSE_REDIS_URL": sentinel_set.url, "DIAGNOSE_PREFIX": prefix}
    serve = subprocess.Popen(
        [COORDINATOR, "serve", "--sweep-interval", "60"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = SpecStore(connect(sentinel_set.url), prefix)
    try:
        store.put("brief", log_spec("brief", lifespan=0.6 / 60))
        assert wait_for(lambda: store.version() == 2, 10)
        assert not store.client.sismember(store.keys.ids, "brief")
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=10)
        store.client.close()
    assert serve.returncode == 0, err
    assert "expired: published removal of brief" in err
