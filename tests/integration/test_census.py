"""Tests of the summary's census (coordinator.fleet.census) over status hashes written directly,
read by the server-side script and by the pipeline used where scripts are refused."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from coordinator.fleet.census import census
from diagnose_redis import SpecStore
from diagnose_redis.protocol import PROCESS_FIELD, encode_status_field
from diagnose_redis.publisher import census as census_module

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def spec(lastmodified: dt.datetime, **extra: Any) -> dict[str, Any]:
    """Return a log spec last modified at lastmodified."""
    body = {
        "target": "shop.pricing.total",
        "instrument": {"type": "log", "name": "n", "value": "result"},
        "lifespan": 10,
        "lastmodified": lastmodified,
    }
    body.update(extra)
    return body


@pytest.fixture(params=["script", "pipeline"])
def store(request: pytest.FixtureRequest, redis_url: str) -> Iterator[SpecStore]:
    """A store over a fleet of seven processes, read by script or, as if scripts were
    refused, by pipeline."""
    client = redis.Redis.from_url(redis_url)
    if request.param == "pipeline":
        census_module._refused.add(id(client))
    store = SpecStore(client, "census")
    store.put("cur", spec(NOW))
    store.put("web-only", spec(NOW, select={"service": "web"}))
    stored = store.get("cur")
    assert stored is not None
    lm = stored["lastmodified"]
    old = lm - dt.timedelta(minutes=5)
    # process: (labels, role, {spec: (lm, err)}, heartbeat age)
    fleet: dict[str, tuple[dict[str, str], str | None, dict[str, Any], int]] = {
        "web-1": ({"service": "web"}, None, {"cur": (lm, None), "web-only": (lm, None)}, 1),
        "web-2": ({"service": "web"}, None, {"cur": (lm, "TargetNotFound: x")}, 1),
        "api-1": ({"service": "api"}, None, {"cur": (old, None)}, 1),
        "api-2": ({"service": "api"}, None, {"cur": (lm, None), "gone": (old, None)}, 60),
        "api-3": ({"service": "api"}, None, {}, 1),
        "parent": ({"service": "web"}, "parent", {}, 1),
        "web-3": ({"service": "web"}, None, {"cur": (lm, None)}, 1),
    }
    pipe = client.pipeline()
    now = time.time()
    for process, (labels, role, fields, age) in fleet.items():
        info: dict[str, Any] = {"host": "h", "labels": {**labels, "process": process}}
        if role:
            info["role"] = role
        mapping = {PROCESS_FIELD: json.dumps(info)}
        for spec_id, (when, err) in fields.items():
            mapping[spec_id] = encode_status_field(when, err, NOW)
        pipe.hset(store.keys.status(process), mapping=mapping)  # type: ignore[arg-type]
        pipe.zadd(store.keys.processes, {process: now - age})
    pipe.execute()
    try:
        yield store
    finally:
        census_module._refused.discard(id(client))
        client.close()


def test_every_state_is_counted(store: SpecStore) -> None:
    """Applied, error, stale and pending are counted per spec over the processes it chooses;
    a pre-fork parent is left out, a late heartbeat counted, a removed spec named."""
    summary = census(store)
    cur = summary["specs"]["cur"]
    assert cur["states"] == {"applied": 3, "error": 1, "pending": 1, "stale": 1}
    assert cur["processes"] == 6 and cur["late"] == 1
    assert cur["errors"] == [{"err": "TargetNotFound: x", "count": 1, "processes": ["web-2"]}]
    web = summary["specs"]["web-only"]
    # Chosen by its select: web-1 applied it; web-2 and web-3 have not (yet).
    assert web["states"] == {"applied": 1, "error": 0, "pending": 2, "stale": 0}
    assert summary["removed"] == ["gone"]


def test_one_spec(store: SpecStore) -> None:
    """status ID counts that spec alone, and names no removed spec."""
    summary = census(store, "web-only")
    assert list(summary["specs"]) == ["web-only"]
    assert summary["specs"]["web-only"]["processes"] == 3
    assert summary["removed"] == []
    gone = census(store, "gone")["specs"]["gone"]
    assert gone["states"]["removed"] == 1 and gone["processes"] == 1


def test_the_script_and_the_pipeline_read_the_same_rows(redis_url: str) -> None:
    """census_rows gives the same rows with and without scripts."""
    client = redis.Redis.from_url(redis_url)
    client.hset("h1", mapping={"_process": '{"role": "parent"}', "a": 'X{"lm": 1', "b": "y"})
    client.hset("h2", mapping={"_process": "{}", "c": "z"})
    args = (["h1", "h2", "h3"], ["a", "b"], [b'{"lm": 1', b""])
    for every_info in (False, True):
        scripted = census_module.census_rows(client, *args, every_info=every_info, count_extra=True)
        census_module._refused.add(id(client))
        try:
            piped = census_module.census_rows(
                client, *args, every_info=every_info, count_extra=True
            )
        finally:
            census_module._refused.discard(id(client))
        assert scripted == piped
    assert scripted[0] == census_module.CensusRow(b"ax", b'{"role": "parent"}', 0, [b"y"])
    assert scripted[1] == census_module.CensusRow(b"--", b"{}", 1, [])
    assert scripted[2] == census_module.CensusRow(b"--", None, 0, [])
    client.close()
