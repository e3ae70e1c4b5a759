"""Helpers shared by the end-to-end tests of a fleet of real worker processes
(``test_subscriber_fleet.Worker``): labelled workers on a prefix of their own, and a publish
that retries while a cluster or Sentinel topology changes under it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from diagnose_redis import SpecStore
from probe_targets.support import wait_for
from test_subscriber_fleet import Worker


@contextmanager
def labelled_workers(
    url: str, prefix: str, labels: dict[str, str]
) -> Iterator[tuple[SpecStore, dict[str, Worker], dict[str, str]]]:
    """Start one worker per process id in labels, with its labels, and wait until all are
    live; give a store, the workers by id, and a dict that holds, once the block ends and
    every worker is closed, what each one wrote to stderr."""
    workers = {
        pid: Worker(url, prefix, "--process-id", pid, "--labels", text)
        for pid, text in labels.items()
    }
    client = redis.Redis.from_url(url)
    store = SpecStore(client, prefix)
    assert wait_for(lambda: set(labels) <= set(store.processes()), 10)
    errors: dict[str, str] = {}
    try:
        yield store, workers, errors
    finally:
        errors.update({pid: w.close() for pid, w in workers.items()})
        client.close()


def put_retrying(store: SpecStore, spec_id: str, spec: dict[str, Any]) -> None:
    """Publish a spec, trying again for up to 5 s while the topology moves under the store."""

    # A connection that a failover or a slot migration closed fails one command; the next
    # one finds the new primary or owner.
    def attempt() -> bool:
        try:
            store.put(spec_id, spec)
        except redis.RedisError:
            return False
        return True

    assert wait_for(attempt, 5)
