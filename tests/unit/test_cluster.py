"""Cluster mode's key layout: one hash tag holds every key and the channel of a prefix."""

from __future__ import annotations

import redis

from diagnose_redis import Keys
from diagnose_redis.connection.slot import slot_of
from diagnose_redis.protocol import cluster_prefix


def test_prefix_becomes_one_hash_tag() -> None:
    """In cluster mode every key and the channel of a prefix share the slot of its hash tag."""
    keys = Keys("diagnose", cluster=True)
    assert keys.prefix == "{diagnose}" and keys.sharded
    names = [keys.events, keys.version, keys.ids, keys.spec("a"), keys.status("w-1")]
    assert {redis.crc.key_slot(name.encode()) for name in names} == {slot_of("{diagnose}")}
    assert cluster_prefix("app{shop}") == "app{shop}"
    assert cluster_prefix("a{}b") == "{a{}b}"
    assert Keys("diagnose").prefix == "diagnose"
