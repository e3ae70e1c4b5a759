"""Tests of the subscriber in real worker processes: publish, faults, expiry, fork, signing."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator

import pytest
import redis

from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore, connect
from diagnose_redis.protocol import STATUS_TTL_SECONDS, encode_event
from support.fleet import Worker, applied_everywhere, gone_everywhere, log_spec
from support.waiting import wait_for


@pytest.fixture(scope="module", params=["standalone", "cluster"])
def fleet(request: pytest.FixtureRequest) -> Iterator[tuple[SpecStore, list[Worker]]]:
    """Three workers sharing the session's Redis (or Cluster) under a prefix of their own."""
    prefix = f"fleet{os.getpid()}"
    server = request.getfixturevalue(
        "redis_server" if request.param == "standalone" else "redis_cluster"
    )
    workers = [Worker(server.url, prefix) for _ in range(3)]
    client = connect(server.url, prefix=prefix)
    try:
        yield SpecStore(client, prefix), workers
    finally:
        errors = [w.close() for w in workers]
        client.close()
    assert errors == ["", "", ""]


def test_publish_applies_in_every_worker(fleet) -> None:
    """A published spec is applied by every worker and its probe prints the value."""
    store, workers = fleet
    pids = [w.process_id for w in workers]
    store.put("double", log_spec("double", "result"))
    assert wait_for(lambda: applied_everywhere(store, "double", pids))
    for worker in workers:
        assert worker.call(21) == ["Probe (double) = 42"]
    store.remove("double")
    assert wait_for(lambda: gone_everywhere(store, "double", pids))
    assert all(w.call(1) == [] for w in workers)


def test_bad_spec_reports_error_and_spares_others(fleet) -> None:
    """A spec that cannot apply shows its error in status; the other probes keep firing."""
    store, workers = fleet
    pids = [w.process_id for w in workers]
    store.put("fine", log_spec("fine", "x"))
    store.put("broken", {**log_spec("broken"), "target": "fleet_worker.no_such_function"})
    assert wait_for(lambda: applied_everywhere(store, "broken", pids, error=True))
    assert wait_for(lambda: applied_everywhere(store, "fine", pids))
    assert workers[0].call(3) == ["Probe (fine) = 3"]
    assert "no_such_function" in store.status("broken")[pids[0]]["broken"]["err"]
    store.remove("fine", "broken")
    assert wait_for(lambda: gone_everywhere(store, "fine", pids))


def test_lifespan_expiry_detaches_everywhere(fleet) -> None:
    """A probe whose lifespan runs out stops firing in every worker within 1 s (checked
    against twice that, for a loaded machine)."""
    store, workers = fleet
    pids = [w.process_id for w in workers]
    lm = dt.datetime.now(dt.UTC)
    store.put("brief", log_spec("brief", lifespan=4 / 60, lastmodified=lm))
    assert wait_for(lambda: applied_everywhere(store, "brief", pids))
    assert workers[1].call(2) == ["Probe (brief) = 4"]
    expiry = lm.timestamp() + 4
    assert wait_for(lambda: gone_everywhere(store, "brief", pids), expiry - time.time() + 2.0)
    assert time.time() < expiry + 2.0
    assert all(w.call(5) == [] for w in workers)


def test_garbage_on_channel_is_counted(fleet) -> None:
    """Garbage on the channel is dropped and counted by every worker, which keeps applying."""
    store, workers = fleet
    pids = [w.process_id for w in workers]
    publish = store.client.spublish if store.keys.sharded else store.client.publish
    publish(store.keys.events, b"\x00garbage\xc1")
    store.put("after", log_spec("after"))
    assert wait_for(lambda: applied_everywhere(store, "after", pids))

    def counted() -> bool:
        report = store.status()
        return all(report[p]["_process"]["dropped"].get("malformed", 0) >= 1 for p in pids)

    assert wait_for(counted)
    store.remove("after")


def test_fork_child_runs_its_own_subscriber(fleet) -> None:
    """A forked child reports under its own process id and applies what is published later."""
    store, workers = fleet
    worker = workers[2]
    mark = len(worker.lines)
    worker.send("fork")
    forked = worker.wait_line("forked ", after=mark)
    assert forked
    child_pid = int(forked.split()[1])
    child_id = f"{worker.process_id.rsplit(':', 1)[0]}:{child_pid}"
    assert wait_for(lambda: child_id in store.processes())
    store.put("late", log_spec("late", "x + 100"))
    assert wait_for(lambda: applied_everywhere(store, "late", [child_id, worker.process_id]))
    assert wait_for(lambda: "Probe (late) = 101" in worker.lines)
    assert worker.call(1) == ["Probe (late) = 101"]
    store.remove("late")
    assert wait_for(lambda: gone_everywhere(store, "late", [child_id, worker.process_id]))
    assert store.status()[child_id]["_process"]["pid"] == child_pid


def test_signed_fleet_refuses_forgeries(redis_server: RedisServer, prefix: str) -> None:
    """Workers with a secret apply signed specs and refuse unsigned and forged ones."""
    client = redis.Redis.from_url(redis_server.url)
    worker = Worker(redis_server.url, prefix, "--secret", "k")
    try:
        store = SpecStore(client, prefix, secret="k")
        unsigned = SpecStore(client, prefix)
        unsigned.put("plain", log_spec("plain"))
        SpecStore(client, prefix, secret="wrong").put("wrong", log_spec("wrong"))
        forged = encode_event("delete", "x", 99, secret=b"wrong")
        client.publish(store.keys.events, forged)
        store.put("good", log_spec("good"))
        assert wait_for(lambda: applied_everywhere(store, "good", [worker.process_id]))
        assert worker.call(2) == ["Probe (good) = 4"]
        status = store.status()[worker.process_id]
        assert set(status) == {"good", "_process"}
        assert wait_for(
            lambda: store.status()[worker.process_id]["_process"]["dropped"].get("forged", 0) >= 2
        )
    finally:
        assert worker.close() == ""
        client.close()


def test_redis_restart_loses_nothing(private_redis: RedisServer, prefix: str) -> None:
    """Killing and restarting Redis raises nothing in the workers; later publishes apply."""
    workers = [Worker(private_redis.url, prefix) for _ in range(2)]
    pids = [w.process_id for w in workers]
    client = redis.Redis.from_url(private_redis.url)
    store = SpecStore(client, prefix)
    try:
        store.put("before", log_spec("before"))
        assert wait_for(lambda: applied_everywhere(store, "before", pids))
        private_redis.kill()
        assert all(w.call(1) == ["Probe (before) = 2"] for w in workers)
        private_redis.start()
        store.put("during", log_spec("during", "x"))
        assert wait_for(lambda: applied_everywhere(store, "during", pids), timeout=15)
        assert all(w.call(7) == ["Probe (during) = 7"] for w in workers)
        assert wait_for(lambda: gone_everywhere(store, "before", pids))
    finally:
        errors = [w.close() for w in workers]
        client.close()
    assert errors == ["", ""]


def test_killed_worker_is_offline_at_once(redis_server: RedisServer, prefix: str) -> None:
    """A worker killed with SIGKILL leaves the live list while its last heartbeat is still a
    live one: its connection is gone, though its heartbeat has not aged out."""
    client = redis.Redis.from_url(redis_server.url)
    store = SpecStore(client, prefix)
    worker = Worker(redis_server.url, prefix)
    try:
        assert wait_for(lambda: worker.process_id in store.processes())
        assert store.fleet()[worker.process_id].info["connection"]
        worker.proc.kill()
        assert wait_for(lambda: worker.process_id not in store.processes(), 15)
        last = client.zscore(store.keys.processes, worker.process_id)
        assert last is not None and time.time() - last < STATUS_TTL_SECONDS, (last, time.time())
    finally:
        worker.close()
        client.close()


def test_acl_without_client_commands_falls_back_to_heartbeats(
    private_redis: RedisServer, prefix: str
) -> None:
    """Where the ACL refuses CLIENT SETNAME and CLIENT LIST, the subscriber works unnamed
    and liveness is the heartbeat alone."""
    admin = redis.Redis.from_url(private_redis.url)
    admin.execute_command("ACL", "SETUSER", "fleet", "on", ">pw", "~*", "&*", "+@all", "-client")
    url = private_redis.url.replace("redis://", "redis://fleet:pw@")
    client = redis.Redis.from_url(url)
    store = SpecStore(client, prefix)
    worker = Worker(url, prefix)
    try:
        store.put("acl", log_spec("acl"))
        assert wait_for(lambda: applied_everywhere(store, "acl", [worker.process_id]))
        assert worker.call(2) == ["Probe (acl) = 4"]
        assert "connection" not in store.fleet()[worker.process_id].info
        worker.proc.kill()
        worker.proc.wait()
        assert worker.process_id in store.processes()  # until its heartbeat ages out
    finally:
        worker.close()
        client.close()
        admin.close()
