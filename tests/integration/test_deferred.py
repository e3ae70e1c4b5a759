"""Tests of writes whose replies are read later (_deferred.py), and of the status reporter's
use of them: its write of changed fields does not wait for Redis, and a failure is found."""

from __future__ import annotations

import json
import os
import signal

import pytest
import redis

from coordinator.embedded import RedisServer
from diagnose.outbox import Origin, Outbox
from diagnose_redis import Keys
from diagnose_redis._status.claim import IdClaim
from diagnose_redis._status.reporter import StatusReporter
from diagnose_redis._subscriber.outflow import Outflow
from diagnose_redis.connection.deferred import DeferredReply
from diagnose_redis.protocol import PROCESS_FIELD
from support.waiting import wait_for


def test_a_write_is_done_before_its_reply_is_read(client: redis.Redis, prefix: str) -> None:
    """send() returns once the command is sent; collect() reads the reply and returns what
    was given with it, once."""
    deferred = DeferredReply(client)
    deferred.send([["SET", f"{prefix}:k", "v"]], "about")
    assert deferred.unread == "about"
    assert wait_for(lambda: client.get(f"{prefix}:k") == b"v")
    assert deferred.collect() == ("about", [b"OK"])
    assert deferred.unread is None and deferred.collect() == (None, [])


def test_one_unread_reply_at_a_time(client: redis.Redis, prefix: str) -> None:
    """A second send() before the first reply is read is refused, and sends nothing."""
    deferred = DeferredReply(client)
    deferred.send([["SET", f"{prefix}:k", "first"]], 1)
    with pytest.raises(RuntimeError, match="collect"):
        deferred.send([["SET", f"{prefix}:k", "second"]], 2)
    assert deferred.collect()[0] == 1
    assert client.get(f"{prefix}:k") == b"first"


def test_an_error_reply_is_raised_and_the_connection_goes_on(
    client: redis.Redis, prefix: str
) -> None:
    """A refused command raises from collect(); the next one on the connection works."""
    client.set(f"{prefix}:k", "a string")
    deferred = DeferredReply(client)
    deferred.send([["HSET", f"{prefix}:k", "f", "v"]], {"f"})
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        deferred.collect()
    assert deferred.unread is None
    deferred.send([["SET", f"{prefix}:k", "after"]], 2)
    assert deferred.collect()[0] == 2
    assert client.get(f"{prefix}:k") == b"after"


def test_pipelined_replies_are_all_read_and_the_first_error_raised(
    client: redis.Redis, prefix: str
) -> None:
    """Commands sent together are answered in order: a refused one in the middle raises
    once every reply is read, so the connection's next reply is its own."""
    key = f"{prefix}:k"
    deferred = DeferredReply(client)
    deferred.send([["SET", key, "s"], ["HSET", key, "f", "v"], ["APPEND", key, "!"]], "three")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        deferred.collect()
    deferred.send([["GET", key]], "get")
    assert deferred.collect() == ("get", [b"s!"])


def test_a_connection_redis_closed_is_made_again(private_redis: RedisServer) -> None:
    """A write on a connection Redis closed (CLIENT KILL here; a failover does the same)
    fails, at send or at collect, never silently; the next send connects again. Released
    to the pool, the connection is checked before it is used again."""
    client = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    other = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    deferred = DeferredReply(client)
    try:
        deferred.send([["SET", "k", "1"]], 1)
        assert deferred.collect()[0] == 1
        assert other.client_kill_filter(_type="normal", skipme=True) >= 1
        with pytest.raises(redis.ConnectionError):
            deferred.send([["SET", "k", "lost"]], 2)
            deferred.collect()
        deferred.send([["SET", "k", "again"]], 3)
        assert deferred.collect()[0] == 3
        deferred.release()
        assert other.client_kill_filter(_type="normal", skipme=True) >= 1
        deferred.send([["SET", "k", "checked"]], 4)
        assert deferred.collect()[0] == 4
        assert other.get("k") == b"checked"
    finally:
        client.close()
        other.close()


def test_a_forked_child_leaves_its_parents_reply_alone(client: redis.Redis, prefix: str) -> None:
    """After fork() the child has a connection of its own: it neither reads nor writes on
    the parent's socket, whose unread reply stays the parent's to read."""
    deferred = DeferredReply(client)
    deferred.send([["SET", f"{prefix}:k", "parent"]], "parent's")
    pid = os.fork()
    if pid == 0:
        try:
            ok = deferred.collect() == (None, [])
            deferred.send([["SET", f"{prefix}:child", "child"]], "child's")
            ok = ok and deferred.collect()[0] == "child's"
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert deferred.collect()[0] == "parent's"  # a TimeoutError if the child had read it
    assert client.get(f"{prefix}:child") == b"child"


def info() -> str:
    """Return a fixed ``_process`` value."""
    return json.dumps({"pid": 1})


def test_a_flush_does_not_wait_for_redis(private_redis: RedisServer) -> None:
    """The write of a changed field is sent, not waited for: with Redis stopped (SIGSTOP)
    flush() returns without a failure, and the field is there once Redis runs again."""
    client = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    keys = Keys("rep")
    reporter = StatusReporter(client, keys, "p1", info, heartbeat=60)
    try:
        reporter.update({"a": "1"}, wake=False)
        reporter.flush()  # the first write is whole (a transaction), and waited for
        assert reporter.writes == 1 and reporter.failures == 0
        server = private_redis.process
        assert server is not None, "the private redis-server is not running"
        server.send_signal(signal.SIGSTOP)
        try:
            reporter.update({"a": "2"}, wake=False)
            reporter.flush()
            assert reporter.writes == 2 and reporter.failures == 0
        finally:
            server.send_signal(signal.SIGCONT)
        assert wait_for(lambda: client.hget(keys.status("p1"), "a") == b"2")
    finally:
        reporter.stop()
        client.close()


def test_a_failed_write_is_found_by_the_next_heartbeat_and_written_whole(
    client: redis.Redis, prefix: str
) -> None:
    """A write refused by Redis (here the key is not a hash) is found when its reply is
    read, before the heartbeat: on_error hears of it, and the hash is written again whole."""
    keys = Keys(prefix)
    key = keys.status("p1")
    errors: list[Exception] = []
    reporter = StatusReporter(client, keys, "p1", info, heartbeat=0.3, on_error=errors.append)
    try:
        reporter.update({"a": "1", "b": "1"}, wake=False)
        reporter.flush()
        client.delete(key)
        client.set(key, "not a hash")
        reporter.update({"b": "2"}, wake=False)
        reporter.flush()  # sent; the refusal is still unread
        assert reporter.failures == 0
        reporter.start()
        assert wait_for(lambda: reporter.failures >= 1)
        assert "WRONGTYPE" in str(errors[0])
        whole = {b"a": b"1", b"b": b"2", PROCESS_FIELD.encode(): info().encode()}
        assert wait_for(lambda: client.type(key) == b"hash" and client.hgetall(key) == whole)
    finally:
        reporter.stop()


def test_the_reporters_writes_share_one_connection(private_redis: RedisServer) -> None:
    """A write whose reply is unread holds its connection only until the reply is read:
    the heartbeats after it, and the caller's own commands, use the same connection."""
    client = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    observer = redis.Redis.from_url(private_redis.url)
    keys = Keys("rep")
    reporter = StatusReporter(client, keys, "p1", info, heartbeat=0.1, coalesce=0.0)
    try:
        reporter.update({"a": "1"}, wake=False)
        reporter.flush()
        reporter.update({"a": "2"}, wake=False)
        reporter.flush()  # unread
        reporter.collect()  # as the listener does before its own commands
        assert client.get(keys.version) is None
        reporter.update({"a": "3"}, wake=False)
        reporter.flush()  # unread, until the thread's next heartbeat
        writes = reporter.writes
        reporter.start()
        assert wait_for(lambda: reporter.writes >= writes + 2)
        assert reporter.failures == 0
        clients = observer.client_list(_type="normal")
        assert len(clients) == 2, clients  # the observer's and the reporter's
    finally:
        reporter.stop()
        client.close()
        observer.close()


def test_a_heartbeat_that_finds_its_id_taken_says_so(client: redis.Redis, prefix: str) -> None:
    """The claim's refresh rides on the heartbeat, whose replies are read before the next
    one: a process whose id another took hears of it (on_claim_lost) a heartbeat later."""
    keys = Keys(prefix)
    claim = IdClaim(keys, "p1")
    assert claim.acquire(client) == "p1"
    lost: list[bool] = []
    reporter = StatusReporter(
        client,
        keys,
        "p1",
        info,
        heartbeat=0.1,
        claim=claim,
        on_claim_lost=lambda: lost.append(True),
    )
    try:
        reporter.start()
        assert wait_for(lambda: reporter.writes >= 3)
        assert not lost and not claim.lost
        client.set(keys.claim("p1"), "another process")
        assert wait_for(lambda: lost, 3)
        assert claim.lost and reporter.failures == 0
    finally:
        reporter.stop()


def test_probe_output_takes_the_connection_a_status_write_held(
    private_redis: RedisServer,
) -> None:
    """The output stream's round trip first has the reporter read the reply it is owed, and
    takes the same connection: a process sending output still uses one for both."""
    client = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    observer = redis.Redis.from_url(private_redis.url)
    keys = Keys("rep")
    reporter = StatusReporter(client, keys, "p1", info, heartbeat=60)
    box = Outbox()
    flow = Outflow(client, keys, lambda: "p1", outbox=box, before_send=reporter.collect)
    assert box.open(lambda: None), "the outbox refused to open (DIAGNOSE_OUTPUT?)"
    try:
        reporter.update({"a": "1"}, wake=False)
        reporter.flush()
        for n in range(3):
            reporter.update({"a": str(n)}, wake=False)
            reporter.flush()  # unread
            box.put(Origin("s", "log"), "name", str(n), {})
            flow.flush()
        assert flow.sent == 3 and reporter.failures == 0
        assert len(observer.client_list(_type="normal")) == 2  # the observer's and theirs
    finally:
        reporter.stop()
        client.close()
        observer.close()


def test_a_flush_with_nothing_to_send_gives_the_connection_back(
    private_redis: RedisServer,
) -> None:
    """A write that finds nothing to send reads the reply it is owed and gives the
    connection back to the pool, for the client's other commands."""
    client = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    observer = redis.Redis.from_url(private_redis.url)
    reporter = StatusReporter(client, Keys("rep"), "p1", info, heartbeat=60)
    try:
        reporter.update({"a": "1"}, wake=False)
        reporter.flush()
        reporter.update({"a": "2"}, wake=False)
        reporter.flush()  # unread
        reporter.flush()  # nothing changed since
        assert client.get("rep:version") is None
        assert len(observer.client_list(_type="normal")) == 2  # the observer's and theirs
    finally:
        reporter.stop()
        client.close()
        observer.close()
