"""``publish --wait`` while the fleet reconnects: right after a Redis restart (empty, or with
its data back) and right after a Sentinel failover, every process is back within a second or
two and the wait exits 0, rather than finding "no processes online" (exit 3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner

from coordinator.cli import cli
from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore, connect
from support.cli import coordinator
from support.fleet import Worker
from support.servers import started_redis
from support.topologies import SentinelSet
from support.waiting import wait_for


@pytest.fixture
def restartable_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, restarted by the test."""
    with started_redis() as server:
        yield server


def publish_and_wait(url: str, prefix: str, spec_id: str, *, in_process: bool = False) -> str:
    """Publish a probe with --wait at once (in this process: no start-up delay, during
    which the fleet would be back already); assert it exits 0; return its report."""
    args = ["publish", spec_id, "-t", "fleet_worker.work", "--value", "x", "--wait"]
    args += ["--timeout", "20"]
    if in_process:
        result = CliRunner().invoke(cli, ["--redis-url", url, "--prefix", prefix, *args])
        assert result.exit_code == 0, result.stderr
        return result.stderr
    done = coordinator(url, prefix, *args)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.parametrize("keep_data", [False, True], ids=["empty", "data-kept"])
def test_wait_right_after_a_redis_restart_waits_for_the_fleet(
    restartable_redis: RedisServer, prefix: str, keep_data: bool
) -> None:
    """Published the instant Redis is back, --wait waits for both workers (they register
    again within a heartbeat, or reconnect to the new server's data) and exits 0."""
    workers = [Worker(restartable_redis.url, prefix) for _ in range(2)]
    client = redis.Redis.from_url(restartable_redis.url)
    store = SpecStore(client, prefix)
    try:
        assert wait_for(lambda: set(store.processes()) == {w.process_id for w in workers}, 10)
        if keep_data:
            client.save()  # loaded back at the restart: heartbeats and status as they were
        restartable_redis.stop()
        restartable_redis.start()
        report = publish_and_wait(restartable_redis.url, prefix, "back", in_process=True)
        for worker in workers:
            assert f"{worker.process_id}" in report and "applied" in report, report
        assert "no processes are online" not in report
    finally:
        errors = [w.close() for w in workers]
        client.close()
    assert errors == ["", ""]


def test_wait_still_leaves_a_killed_worker_out(restartable_redis: RedisServer, prefix: str) -> None:
    """A worker killed on the same server (its connection gone from it) is not waited for:
    --wait exits 0 at once with the other."""
    killed, alive = Worker(restartable_redis.url, prefix), Worker(restartable_redis.url, prefix)
    client = redis.Redis.from_url(restartable_redis.url)
    store = SpecStore(client, prefix)
    try:
        assert wait_for(lambda: len(store.processes()) == 2, 10)
        killed.proc.kill()
        killed.proc.wait()
        assert wait_for(lambda: set(store.processes()) == {alive.process_id}, 2)
        report = publish_and_wait(restartable_redis.url, prefix, "one")
        [warning] = [line for line in report.splitlines() if line.startswith("warning:")]
        assert "offline" in warning and killed.process_id in warning, report
    finally:
        killed.close()
        alive.close()
        client.close()


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    """A primary, a replica and a Sentinel of the test's own."""
    topology = SentinelSet()
    try:
        yield topology.start()
    finally:
        topology.cleanup()


@pytest.mark.timeout(90)
def test_wait_right_after_a_failover_exits_0(sentinels: SentinelSet, prefix: str) -> None:
    """Published as soon as the new primary is up, --wait waits for the workers still
    reconnecting (their heartbeats came over with the data) and exits 0."""
    workers = [Worker(sentinels.url, prefix) for _ in range(2)]
    store = SpecStore(connect(sentinels.url, socket_timeout=2), prefix)
    try:
        assert wait_for(lambda: len(store.processes()) == 2, 10)
        sentinels.failover(kill=False)
        report = publish_and_wait(sentinels.url, prefix, "after-failover")
        for worker in workers:
            assert worker.process_id in report, report
    finally:
        errors = [w.close() for w in workers]
        store.client.close()
    assert errors == ["", ""]
