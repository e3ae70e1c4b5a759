"""Cluster end to end: a real three-primary Redis Cluster, and a slot migration under workers."""

from __future__ import annotations

import time

import redis

from diagnose_redis import Keys, SpecStore, connect
from diagnose_redis.connection.slot import slot_of
from diagnose_redis.protocol import cluster_prefix
from fleet_helpers import put_retrying
from probe_targets.support import wait_for
from test_subscriber_fleet import Worker, applied_everywhere, log_spec
from topologies import Cluster


def test_prefix_becomes_one_hash_tag() -> None:
    """In cluster mode every key and the channel of a prefix share the slot of its hash tag."""
    keys = Keys("diagnose", cluster=True)
    assert keys.prefix == "{diagnose}" and keys.sharded
    names = [keys.events, keys.version, keys.ids, keys.spec("a"), keys.status("w-1")]
    assert {redis.crc.key_slot(name.encode()) for name in names} == {slot_of("{diagnose}")}
    assert cluster_prefix("app{shop}") == "app{shop}"
    assert cluster_prefix("a{}b") == "{a{}b}"
    assert Keys("diagnose").prefix == "diagnose"


def test_slot_migration_loses_no_spec(redis_cluster: Cluster, prefix: str) -> None:
    """Workers on a cluster apply specs, follow their slot to another primary when it
    migrates, and apply what is published after within 5 s; no host sees an error."""
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
        published = time.monotonic()
        put_retrying(store, "after", log_spec("after", "x + 1"))
        assert wait_for(lambda: applied_everywhere(store, "after", pids), 5)
        assert time.monotonic() - published < 5.0
        calls = [w.call(1) for w in workers]
        assert calls == [["Probe (before) = 2", "Probe (after) = 2"]] * 2
        # Every key of the fleet moved with the slot: the new owner holds them all.
        assert target.client().get(store.keys.version) == b"2"
    finally:
        errors = [w.close() for w in workers]
        store.client.close()
    assert errors == ["", ""]
