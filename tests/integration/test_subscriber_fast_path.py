"""The apply fast path through Redis: a subscriber that receives an edit keeping the probe's
shape, or the same spec published again, swaps a deadline into the installed wrapper and
writes one status field, with the counters."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import diagnose
from diagnose_redis import SpecStore
from diagnose_redis._subscriber.listener import Subscriber
from support.waiting import wait_for

TARGET = f"{__name__}.target"


def target(x: int) -> int:
    """Return x plus one: the function these tests probe."""
    return x + 1


def spec(value: str, lastmodified: dt.datetime) -> dict[str, Any]:
    return {
        "target": TARGET,
        "instrument": {"type": "test", "name": "t", "value": value},
        "lifespan": 10,
        "lastmodified": lastmodified,
    }


@pytest.fixture
def subscribed(redis_url: str, prefix: str, manager: Any) -> Iterator[Subscriber]:
    """A subscriber on the test's manager, connected."""
    sub = Subscriber(redis_url, process_id="fast:1", prefix=prefix, manager=manager).start()
    assert sub.connected.wait(5)
    try:
        yield sub
    finally:
        sub.stop()


def status(client: redis.Redis, store: SpecStore, field: str) -> dict[str, Any] | None:
    raw = client.hget(store.keys.status("fast:1"), field)
    return None if raw is None else json.loads(raw)


def reported(client: redis.Redis, store: SpecStore, lastmodified: dt.datetime) -> bool:
    """Tell whether the status says spec "s" of this lastmodified applied without error."""
    field = status(client, store, "s")
    return field is not None and field["lm"] == lastmodified.isoformat() and not field["err"]


def test_an_edit_over_redis_swaps_a_deadline_and_reports_it(
    client: redis.Redis, prefix: str, manager: Any, subscribed: Subscriber
) -> None:
    """An edit that reads the same names keeps the wrapper (no new plan); the new value
    fires and the status reports the new lastmodified."""
    store = SpecStore(client, prefix)
    first = dt.datetime.now(dt.UTC)
    store.put("s", spec("result * 2", first))
    assert wait_for(lambda: reported(client, store, first))
    patch = diagnose.probes.active_probes[TARGET]._patch
    assert patch is not None
    rebuilds, retunes = patch.rebuilds, patch.retunes
    second = first + dt.timedelta(seconds=1)
    store.put("s", spec("result * 3", second))
    assert wait_for(lambda: reported(client, store, second))
    assert (patch.rebuilds, patch.retunes) == (rebuilds, retunes + 1)
    assert target(1) == 2
    inst = next(iter(diagnose.probes.active_probes[TARGET].instruments.values()))
    assert inst.results == [6]


def test_publishing_again_keeps_the_counters_and_moves_the_expiry(
    client: redis.Redis, prefix: str, manager: Any, subscribed: Subscriber
) -> None:
    """The same spec published again (a new lastmodified only) leaves the instrument as it
    was: the status field of the new lastmodified carries on counting its calls."""
    store = SpecStore(client, prefix)
    first = dt.datetime.now(dt.UTC)
    store.put("s", spec("result", first))
    assert wait_for(lambda: reported(client, store, first))
    for x in range(5):
        assert target(x) == x + 1
    patch = diagnose.probes.active_probes[TARGET]._patch
    assert patch is not None
    rebuilds = patch.rebuilds
    again = first + dt.timedelta(seconds=1)
    store.put("s", spec("result", again))
    assert wait_for(lambda: reported(client, store, again))
    field = status(client, store, "s")
    assert field is not None and field["fired"] == 5 and field["errors"] == 0
    assert patch.rebuilds == rebuilds
    inst = next(iter(diagnose.probes.active_probes[TARGET].instruments.values()))
    assert inst.expires == again + dt.timedelta(minutes=10)
    # A publish writes its spec's field alone; _process (the version seen, the counts)
    # follows with the next heartbeat.
    process = status(client, store, "_process")
    assert process is not None and process["version"] < subscribed.version == 2
    caught_up = wait_for(lambda: (status(client, store, "_process") or {}).get("version") == 2, 8)
    assert caught_up, "the heartbeat did not rewrite _process"
