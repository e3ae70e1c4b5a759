"""`coordinator stats` in-process on a real Redis: -f refreshes until Ctrl-C."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from coordinator.cli import cli
from coordinator.commands import stats as stats_command
from diagnose.aggregates import Aggregates
from diagnose.instruments import StatsInstrument
from diagnose.outbox import Origin
from diagnose_redis import SpecStore
from diagnose_redis._subscriber import stats_writer
from diagnose_redis._subscriber.flusher import Flusher
from diagnose_redis.protocol import Keys


@pytest.fixture
def published(redis_url: str, prefix: str) -> Any:
    """A stats spec with a few values merged into Redis by a flusher of the test's own."""
    client = redis.Redis.from_url(redis_url)
    store = SpecStore(client, prefix)
    store.put(
        "lat",
        {
            "target": "pkg.mod.f",
            "instrument": {"type": "stats", "name": "lat", "value": "v"},
            "lifespan": 5,
            "lastmodified": dt.datetime.now(dt.UTC),
        },
    )
    stats_writer.use(secret=None, labels=dict)
    registry = Aggregates()
    instrument = StatsInstrument("lat", "v")
    instrument.aggregate.origin = Origin("lat", "stats")
    registry.add(instrument.aggregate)
    for value in (1.0, 2.0, 3.0):
        instrument.fire({}, {"v": value})
    Flusher(client, Keys(prefix), lambda: "p1", aggregates=registry).flush()
    yield redis_url, prefix
    client.close()


def test_follow_refreshes_until_ctrl_c_and_exits_0(
    published: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """-f prints the statistics again every second; Ctrl-C ends it with exit 0."""
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(stats_command.time, "sleep", sleep)
    url, prefix = published
    result = CliRunner().invoke(
        cli, ["--redis-url", url, "--prefix", prefix, "stats", "lat", "-f", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == 3 and pauses == [1.0, 1.0, 1.0]
    assert {d["groups"]["all"]["count"] for d in documents} == {3}
