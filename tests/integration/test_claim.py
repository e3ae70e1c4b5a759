"""One live process per id: two processes started with one configured id report as two."""

from __future__ import annotations

import os

import redis

from coordinator.embedded import RedisServer
from diagnose_redis import Keys, SpecStore
from diagnose_redis._status.claim import IdClaim
from support.app_servers import coordinator
from support.fleet import Worker, applied_everywhere, log_spec
from support.waiting import wait_for


def test_first_claimant_keeps_the_id_others_get_id_pid(client: redis.Redis) -> None:
    """The first claim on an id wins; a second claimant gets ID:PID; release frees it."""
    keys = Keys("c")
    first, second = IdClaim(keys, "web"), IdClaim(keys, "web")
    assert first.acquire(client) == "web"
    assert second.acquire(client) == f"web:{os.getpid()}"
    assert first.acquire(client) == "web"  # a held claim is kept
    first.release(client)
    third = IdClaim(keys, "web")
    assert third.acquire(client) == "web"
    second.release(client)
    assert client.get(keys.claim(f"web:{os.getpid()}")) is None


def test_claim_lapses_without_heartbeat_and_a_lost_claim_is_noticed(client: redis.Redis) -> None:
    """A claim not refreshed expires; its holder's next refresh sees another has it."""
    keys = Keys("c")
    holder = IdClaim(keys, "job", ttl_ms=100)
    assert holder.acquire(client) == "job"
    assert wait_for(lambda: client.get(keys.claim("job")) is None, 2)
    other = IdClaim(keys, "job")
    assert other.acquire(client) == "job"
    pipe = client.pipeline()
    for command in holder.refresh_commands():
        pipe.execute_command(*command)
    assert not holder.check(pipe.execute()) and holder.lost
    assert client.get(keys.claim("job")) == other.token.encode()


def test_two_processes_with_one_configured_id(redis_server: RedisServer, prefix: str) -> None:
    """Two workers started with the same id report as ID and ID:PID, each with its own
    status hash, and publish --wait counts both; a restarted first one gets ID back."""
    client = redis.Redis.from_url(redis_server.url)
    store = SpecStore(client, prefix)
    first = Worker(redis_server.url, prefix, "--process-id", "same-1")
    second = Worker(redis_server.url, prefix, "--process-id", "same-1")
    workers = [first, second]
    try:
        expected = {"same-1", f"same-1:{second.proc.pid}"}
        assert wait_for(lambda: set(store.processes()) == expected), store.processes()
        status = store.status()
        assert {status[p]["_process"]["pid"] for p in expected} == {
            first.proc.pid,
            second.proc.pid,
        }
        result = coordinator(
            redis_server.url, prefix, "publish", "s1", "-t", "fleet_worker.work",
            "--value", "result", "--wait", "--timeout", "10",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert all(p in result.stderr for p in expected)  # the result table goes to stderr
        assert "reporting as 'same-1:" in second.close()
        assert first.close() == ""
        workers = [Worker(redis_server.url, prefix, "--process-id", "same-1")]
        assert wait_for(lambda: set(store.processes()) == {"same-1"})
    finally:
        for worker in workers:
            worker.close()
        client.close()


def test_forked_child_of_a_configured_id(redis_server: RedisServer, prefix: str) -> None:
    """A child forked from a process holding a configured id reports as ID:PID at once,
    with the probes it inherited applied under its own id; its parent is a parent."""
    client = redis.Redis.from_url(redis_server.url)
    store = SpecStore(client, prefix)
    worker = Worker(redis_server.url, prefix, "--process-id", "forker")
    try:
        store.put("kept", log_spec("kept", "x + 1"))
        assert wait_for(lambda: applied_everywhere(store, "kept", ["forker"]))
        mark = len(worker.lines)
        worker.send("fork")
        forked = worker.wait_line("forked ", after=mark)
        assert forked, (worker.lines[mark:], worker.close()[-3000:])
        child_id = f"forker:{forked.split()[1]}"
        # No publish: the child reports what it inherited, applied, at once.
        assert wait_for(lambda: applied_everywhere(store, "kept", [child_id]), 5)
        entry = store.status("kept")[child_id]["kept"]
        kept = store.get("kept")
        assert kept is not None
        assert entry["err"] is None and entry["lm"] == kept["lastmodified"]
        fleet = store.fleet()
        assert wait_for(lambda: store.fleet()["forker"].parent)
        assert fleet[child_id].role == "process"
        assert store.fleet()["forker"].children == 1
        assert set(store.processes(parents=False)) == {child_id}
        assert wait_for(lambda: "Probe (kept) = 2" in worker.lines)  # the child fires it
    finally:
        worker.close()
        client.close()


def test_a_subscriber_whose_claim_is_taken_moves_to_id_pid(
    client: redis.Redis, redis_url: str, prefix: str
) -> None:
    """If another process took its id (its heartbeats stalled), a subscriber notices at its
    next heartbeat and reports everything under ID:PID from then on."""
    import diagnose
    from diagnose_redis._subscriber.listener import Subscriber

    manager = diagnose.ProbeManager()
    manager.instrument_classes["test"] = diagnose.ProbeTestInstrument
    store = SpecStore(client, prefix)
    spec = {
        "target": f"{__name__}.target",
        "instrument": {"type": "test", "name": "t", "value": "result"},
    }
    with Subscriber(redis_url, process_id="lost-1", prefix=prefix, manager=manager).start() as sub:
        store.put("s", spec)
        assert wait_for(lambda: applied_everywhere(store, "s", ["lost-1"]))
        client.set(store.keys.claim("lost-1"), "someone else")
        sub.reporter.poke(full=True)  # the next heartbeat, now
        moved = f"lost-1:{os.getpid()}"
        assert wait_for(lambda: applied_everywhere(store, "s", [moved]), 5)
        assert sub.process_id == moved and manager.process_id == moved
        assert set(manager.specs["s"]["applied"]) == {moved}
        assert store.status()[moved]["_process"]["process_id"] == moved
    with manager.lock:
        manager.specs.clear()
        manager.apply()


def target(x: int) -> int:
    """Return x: the function the lost-claim test probes."""
    return x
