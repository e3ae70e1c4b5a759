"""The flusher's stats and distinct writers and the publisher's reads on a real Redis: what
lands in which key, idempotent rewrites, the spec's TTL, nothing written once the spec is
gone, distinct's exact and estimated counts, hashed values, and removal with the spec."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from diagnose.aggregates import Aggregate, Aggregates
from diagnose.instruments import DistinctInstrument, StatsInstrument
from diagnose.outbox import Origin
from diagnose_redis import SpecStore, connect
from diagnose_redis._subscriber import flusher as flushing
from diagnose_redis._subscriber import stats_writer
from diagnose_redis._subscriber.flusher import Flusher
from diagnose_redis.protocol.hll import REGISTERS, DenseHLL
from diagnose_redis.publisher import count_distinct, drop_aggregates, read_incarnations


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test's empty database."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class Fleet:
    """Specs stored under a prefix, instruments of them, and one flusher of their own."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.store = SpecStore(client, prefix)
        self.keys = self.store.keys
        self.registry = Aggregates()
        self.flusher = Flusher(client, self.keys, lambda: "web-1", aggregates=self.registry)

    def instrument(self, spec_id: str, itype: str, lifespan: float | None = 10, **custom: Any):
        """Publish a spec and return an instrument of it (fed by the test, not a probe)."""
        self.store.put(
            spec_id,
            {
                "target": "pkg.mod.f",
                "instrument": {"type": itype, "name": spec_id, "value": "v", "custom": custom},
                "lifespan": lifespan,
                "lastmodified": dt.datetime.now(dt.UTC),
            },
        )
        cls = StatsInstrument if itype == "stats" else DistinctInstrument
        instrument = cls(spec_id, "v", custom=custom)
        self.registry.add(instrument.aggregate)
        instrument.aggregate.origin = Origin(spec_id, itype)
        return instrument

    def keys_of(self, spec_id: str) -> list[str]:
        """Return every key holding spec_id's statistics."""
        found = []
        for kind in ("agg", "stats", "distinct"):
            pattern = f"{self.keys.prefix}:{kind}:{spec_id}*"
            found += [k.decode() for k in self.client.scan_iter(match=pattern)]
        return sorted(found)


@pytest.fixture
def fleet(client: redis.Redis, prefix: str) -> Fleet:
    """Specs and a flusher under the test's prefix."""
    stats_writer.use(secret=None, labels=lambda: {"version": "7"})
    return Fleet(client, prefix)


def feed(instrument: Any, values: list[Any], group: str | None = None) -> None:
    """Fire the instrument once per value, as the probe would."""
    for value in values:
        instrument.fire({}, {"v": value, "g": group})


def groups_of(fleet: Fleet, spec_id: str) -> list[Any]:
    """Return the ``all`` group of every incarnation of a distinct spec."""
    found = read_incarnations(fleet.client, fleet.keys, spec_id, "distinct")
    return [incarnation.groups["all"] for incarnation in found]


def test_stats_land_in_one_hash_per_incarnation(fleet: Fleet) -> None:
    """A flush writes the incarnation's hash: its process, labels, and each group's fields;
    the index lists it."""
    instrument = fleet.instrument("lat", "stats")
    feed(instrument, [1.0, 2.0, 3.0, "x"])
    fleet.flusher.flush()
    [found] = read_incarnations(fleet.client, fleet.keys, "lat", "stats")
    assert found.process == "web-1" and found.labels == {"version": "7", "process": "web-1"}
    sketch = found.groups["all"]
    assert (sketch.count, sketch.low, sketch.high, sketch.total, sketch.invalid) == (
        3,
        1.0,
        3.0,
        6.0,
        1,
    )
    assert fleet.client.smembers(fleet.keys.aggregates("lat")) == {found.key.encode()}


def test_writing_a_take_twice_changes_nothing(fleet: Fleet) -> None:
    """Totals are written as they are, not added: a take merged twice counts once."""
    instrument = fleet.instrument("lat", "stats")
    feed(instrument, [1.0, 5.0])
    take = instrument.aggregate.take()
    for _ in range(2):
        pipe = fleet.client.pipeline(transaction=True)
        stats_writer.write_stats(pipe, fleet.keys, "web-1", instrument.aggregate, take)
        pipe.execute()
    [found] = read_incarnations(fleet.client, fleet.keys, "lat", "stats")
    assert found.groups["all"].count == 2


def test_the_keys_take_the_spec_ttl_and_keep_it_when_published_again(fleet: Fleet) -> None:
    """The aggregates expire with the spec; publishing it again with another lifespan moves
    their TTL too, those of idle processes included; no lifespan: no TTL."""
    instrument = fleet.instrument("lat", "stats", lifespan=10)
    feed(instrument, [1.0])
    fleet.flusher.flush()
    names = fleet.keys_of("lat")
    assert len(names) == 2
    for name in names:
        assert 9_000 < fleet.client.pttl(name) <= 10 * 60_000
    spec = fleet.store.get("lat")
    assert spec is not None
    fleet.store.put("lat", {**spec, "lifespan": None, "lastmodified": dt.datetime.now(dt.UTC)})
    assert [fleet.client.pttl(name) for name in names] == [-1, -1]


@pytest.mark.parametrize("itype", ["stats", "distinct"])
def test_nothing_is_written_once_the_spec_is_gone(fleet: Fleet, itype: str) -> None:
    """A flush after the spec's removal brings none of its keys back (a distinct flush's
    PFADD included: the script deletes what it made)."""
    instrument = fleet.instrument("gone", itype, by="g")
    feed(instrument, [1.0], group="a")
    fleet.flusher.flush()
    assert fleet.keys_of("gone")
    fleet.store.remove("gone")
    assert fleet.keys_of("gone") == []
    feed(instrument, [2.0, 3.0], group="a")
    feed(instrument, [4.0], group="b")
    fleet.flusher.flush()
    assert fleet.keys_of("gone") == []


def test_distinct_is_exact_below_the_limit_and_estimated_above(fleet: Fleet) -> None:
    """Up to 100 distinct values are counted exactly across incarnations; beyond, the
    HyperLogLogs' union is within 2 %."""
    small = fleet.instrument("few", "distinct")
    other = fleet.instrument("few", "distinct")  # a second incarnation of the same spec
    feed(small, [f"u{n}" for n in range(60)])
    feed(other, [f"u{n}" for n in range(40, 99)])
    fleet.flusher.flush()
    parts = groups_of(fleet, "few")
    assert len(parts) == 2
    assert count_distinct(fleet.client, parts) == (99, True)

    large = fleet.instrument("many", "distinct")
    for start in range(0, 30_000, 5_000):  # in several flushes
        feed(large, list(range(start, start + 5_000)) + list(range(0, 100)))
        fleet.flusher.flush()
    parts = groups_of(fleet, "many")
    distinct, exact = count_distinct(fleet.client, parts)
    assert not exact and abs(distinct - 30_000) <= 0.02 * 30_000
    assert parts[0].count == 30_000 + 6 * 100


def test_distinct_values_never_reach_redis_in_clear(fleet: Fleet) -> None:
    """Only keyed hashes of the values are stored; another secret hashes them differently."""
    secret = "card-4111111111111111"
    instrument = fleet.instrument("cards", "distinct", by="g")
    feed(instrument, [secret, "another-value"], group="visa")
    fleet.flusher.flush()
    everything: list[Any] = []
    for key in fleet.client.scan_iter(match=f"{fleet.keys.prefix}:*"):
        everything.append(key)
        kind = fleet.client.type(key)
        if kind == b"hash":
            everything += fleet.client.hgetall(key).items()
        elif kind == b"string":
            everything.append(fleet.client.get(key))
    stored = repr(everything)  # bytes shown as they are: the secret's digits would show
    assert "4111111111111111" not in stored and "another-value" not in stored
    plain = stats_writer.element_hasher(None, "cards")(b"s:x")
    keyed = stats_writer.element_hasher(b"fleet secret", "cards")(b"s:x")
    elsewhere = stats_writer.element_hasher(None, "other-spec")(b"s:x")
    assert len({plain, keyed, elsewhere}) == 3 and 0 <= plain < 2**64


def test_the_process_hyperloglog_is_redis_own(client: redis.Redis) -> None:
    """The registers a process builds are those PFADD would set for the same hashes, and
    Redis reads the dense string as one of its HyperLogLogs (PFCOUNT, PFADD, PFMERGE)."""
    log = DenseHLL()
    elements = [stats_writer.element_hasher(None, "s")(str(n).encode()) for n in range(5000)]
    grew = [log.add(element) for element in elements]
    assert any(grew) and not log.add(elements[0])
    client.set("mine", log.dump())
    assert client.execute_command("PFDEBUG", "GETREG", "mine") == [
        log.register(i) for i in range(REGISTERS)
    ]
    assert abs(client.pfcount("mine") - 5000) <= 100
    client.pfadd("native", "a", "b")
    assert client.pfmerge("both", "mine", "native")
    assert abs(client.pfcount("both") - 5002) <= 100


def test_a_retried_distinct_take_sends_its_registers_again(fleet: Fleet) -> None:
    """A flush that failed after the registers grew sends them with the retry of the same
    take; a later take that grows nothing leaves the HyperLogLog as it is."""
    instrument = fleet.instrument("users", "distinct")
    feed(instrument, [f"u{n}" for n in range(500)])
    aggregate = instrument.aggregate
    take = aggregate.take()
    lost = fleet.client.pipeline(transaction=True)
    stats_writer.write_distinct(lost, fleet.keys, "web-1", aggregate, take)
    lost.reset()  # the transaction never reached Redis
    for attempt in (take, None):
        if attempt is None:
            feed(instrument, [f"u{n}" for n in range(500)])  # all seen: nothing grows
            attempt = aggregate.take()
        pipe = fleet.client.pipeline(transaction=True)
        stats_writer.write_distinct(pipe, fleet.keys, "web-1", aggregate, attempt)
        pipe.execute()
        distinct, exact = count_distinct(fleet.client, groups_of(fleet, "users"))
        assert not exact and abs(distinct - 500) <= 15


def test_dropping_the_aggregates_removes_every_key(fleet: Fleet) -> None:
    """drop_aggregates removes the index, every hash and every HyperLogLog of the specs."""
    stats = fleet.instrument("lat", "stats", by="g")
    distinct = fleet.instrument("users", "distinct", by="g")
    feed(stats, [1.0, 2.0], group="a|b")
    feed(distinct, ["x", "y"], group="a|b")
    feed(distinct, ["z"], group="c")
    fleet.flusher.flush()
    assert len(fleet.keys_of("lat")) == 2 and len(fleet.keys_of("users")) == 4
    assert drop_aggregates(fleet.client, fleet.keys, ["lat", "users"]) == 6
    assert fleet.keys_of("lat") == fleet.keys_of("users") == []


def test_an_expired_spec_swept_takes_its_aggregates_along(fleet: Fleet) -> None:
    """When serve turns an expired spec into a removal, its statistics go too."""
    instrument = fleet.instrument("brief", "stats", lifespan=10)
    feed(instrument, [1.0])
    fleet.flusher.flush()
    fleet.client.delete(fleet.keys.spec("brief"))  # as its TTL would
    assert fleet.store.sweep_expired() == ["brief"]
    assert fleet.keys_of("brief") == []


def test_statistics_work_on_a_cluster(redis_cluster: Any, prefix: str) -> None:
    """On a Redis Cluster every key of a spec's statistics shares the fleet's slot: the
    scripts, PFCOUNT over many keys and the removal work there too."""
    client = connect(redis_cluster.url, prefix=prefix)
    try:
        stats_writer.use(secret=None, labels=dict)
        fleet = Fleet(client, prefix)
        assert fleet.keys.prefix.startswith("{")
        stats = fleet.instrument("lat", "stats")
        distinct = fleet.instrument("users", "distinct")
        other = fleet.instrument("users", "distinct")
        feed(stats, [1.0, 2.0])
        feed(distinct, list(range(150)))
        feed(other, list(range(100, 300)))
        fleet.flusher.flush()
        [found] = read_incarnations(client, fleet.keys, "lat", "stats")
        assert found.groups["all"].count == 2
        assert abs(count_distinct(client, groups_of(fleet, "users"))[0] - 300) <= 6
        assert len(fleet.keys_of("lat")) == 2 and len(fleet.keys_of("users")) == 5
        fleet.store.remove("lat", "users")
        assert fleet.keys_of("lat") == fleet.keys_of("users") == []
    finally:
        client.close()


class Tally(Aggregate):
    """An aggregate of another kind in the same flushes: a count set as it is."""

    kind = "stats-test-tally"

    def __init__(self) -> None:
        super().__init__(Origin("tally", "test"))
        self.count = 0

    def take(self) -> int | None:
        return self.count or None


@flushing.writer("stats-test-tally")
def _write_tally(pipe: Any, keys: Any, process: str, aggregate: Aggregate, take: Any) -> int:
    pipe.set(f"{keys.prefix}:tally", take)
    return 1


def test_without_eval_nothing_is_written_and_other_merges_go_on(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis user that may not run scripts gets no statistics (said once, in a warning)
    while the other aggregates of the same flushes are merged as ever."""
    monkeypatch.setattr(stats_writer, "_scripts_allowed", False)
    monkeypatch.setattr(stats_writer, "_scripts_refused_at", None)
    user = f"noeval{fleet.keys.prefix}"
    fleet.client.execute_command(
        "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-eval", "-evalsha"
    )
    try:
        limited = redis.Redis.from_url(_as_user(fleet.client, user))
        instrument = fleet.instrument("lat", "stats")
        tally = Tally()
        fleet.registry.add(tally)
        flusher = Flusher(limited, fleet.keys, lambda: "web-1", aggregates=fleet.registry)
        for count in (3, 5):
            feed(instrument, [1.0])
            tally.count = count
            with caplog.at_level("WARNING", logger="diagnose_redis"):
                flusher.flush()
            assert fleet.client.get(f"{fleet.keys.prefix}:tally") == str(count).encode()
        assert fleet.keys_of("lat") == []
        warnings = [r for r in caplog.records if "may not run EVAL" in r.getMessage()]
        assert len(warnings) == 1
        limited.close()
    finally:
        fleet.client.execute_command("ACL", "DELUSER", user)


def _as_user(client: redis.Redis, user: str) -> str:
    """Return the URL of client's server for user (password pw)."""
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{user}:pw@{kwargs['host']}:{kwargs['port']}/0"
