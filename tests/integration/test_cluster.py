"""Cluster end to end: a real three-primary Redis Cluster, and a slot migration under workers."""

from __future__ import annotations

from diagnose_redis import SpecStore, connect
from diagnose_redis.connection.slot import slot_of
from support.fleet import Worker, applied_everywhere, log_spec, put_retrying
from support.topologies import Cluster
from support.waiting import wait_for


def test_slot_migration_loses_no_spec(redis_cluster: Cluster, prefix: str) -> None:
    """Workers on a cluster apply specs, follow their slot to another primary when it
    migrates, and apply what is published after; no host sees an error."""
    workers = [Worker(redis_cluster.url, prefix) for _ in range(2)]
    pids = [w.process_id for w in workers]
    store = SpecStore(connect(redis_cluster.url, prefix=prefix), prefix)
    assert store.keys.sharded
    try:
        store.put("before", log_spec("before"))
        assert wait_for(lambda: applied_everywhere(store, "before", pids), 10)
        slot = slot_of(store.keys.prefix)
        owner = redis_cluster.owner(slot)
        target = next(node for node in redis_cluster.primaries if node is not owner)
        redis_cluster.migrate(slot, target)
        put_retrying(store, "after", log_spec("after", "x + 1"))
        assert wait_for(lambda: applied_everywhere(store, "after", pids), 30)
        calls = [w.call(1) for w in workers]
        assert calls == [["Probe (before) = 2", "Probe (after) = 2"]] * 2
        # Every key of the fleet moved with the slot: the new owner holds them all.
        assert target.client().get(store.keys.version) == b"2"
    finally:
        errors = [w.close() for w in workers]
        store.client.close()
    assert errors == ["", ""]
