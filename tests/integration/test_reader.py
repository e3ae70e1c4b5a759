"""Tests of the listener's wait for pub/sub messages (the subscriber's reader), on a real Redis."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from diagnose_redis._subscriber.reader import MessageReader
from support.waiting import wait_for


@pytest.fixture(params=["hiredis", "python"])
def clients(
    request: pytest.FixtureRequest, redis_url: str
) -> Iterator[tuple[redis.Redis, redis.client.PubSub]]:
    """A publishing client, and a pub/sub subscribed to channel ``ch`` (confirmation read),
    with hiredis' parser or redis-py's own (the reader then drains through get_message)."""
    from redis._parsers import _RESP2Parser

    options: dict[str, Any] = {} if request.param == "hiredis" else {"parser_class": _RESP2Parser}
    client = redis.Redis.from_url(redis_url, socket_timeout=5, **options)
    pubsub = client.pubsub()
    pubsub.subscribe("ch")
    deadline = time.monotonic() + 5
    while (message := pubsub.get_message(timeout=0.5)) is None:
        assert time.monotonic() < deadline, "no subscribe confirmation"
    assert message["type"] == "subscribe"
    try:
        yield client, pubsub
    finally:
        pubsub.close()
        client.close()


def drain(reader: MessageReader) -> list[Any]:
    """Take every message that has already arrived."""
    out = []
    while (message := reader.next()) is not None:
        out.append(message["data"])
    return out


def test_wait_returns_none_when_nothing_comes(clients: Any) -> None:
    """A wait with nothing published returns None once its timeout has passed."""
    _, pubsub = clients
    reader = MessageReader(pubsub)
    assert reader.wait(0.05) is None  # the first wait goes through get_message
    started = time.monotonic()
    assert reader.wait(0.2) is None  # then one poll() of its own
    # It waited its timeout (a busy machine only makes that longer); generous above.
    assert 0.15 <= time.monotonic() - started < 10


def test_a_burst_is_read_whole_and_in_order(clients: Any) -> None:
    """Messages published together come one by one, wait() then next(), in order; next()
    says None once nothing more has arrived, and the following wait sees the next publish."""
    client, pubsub = clients
    reader = MessageReader(pubsub)
    assert reader.wait(0.05) is None
    pipe = client.pipeline(transaction=False)
    for n in range(20):
        pipe.publish("ch", f"m{n}")
    pipe.execute()
    first = reader.wait(5)
    assert first is not None and first["type"] == "message"
    seen = [first["data"]]
    deadline = time.monotonic() + 5
    while len(seen) < 20 and time.monotonic() < deadline:
        seen += drain(reader)
        if len(seen) < 20 and (message := reader.wait(1)) is not None:
            seen.append(message["data"])
    assert seen == [f"m{n}".encode() for n in range(20)]
    assert reader.next() is None
    client.publish("ch", "later")
    message = reader.wait(5)
    assert message is not None and message["data"] == b"later"


def test_replies_buffered_by_the_parser_are_not_missed(clients: Any) -> None:
    """Messages the parser already holds (read in one recv with an earlier one) are returned
    by next() although the socket has nothing more to read."""
    client, pubsub = clients
    reader = MessageReader(pubsub)
    assert reader.wait(0.05) is None
    for n in range(3):
        client.publish("ch", f"m{n}")
    # Let all three reach the socket, so that the first read takes them all.
    sock = pubsub.connection._sock

    def arrived() -> int:
        try:
            held = sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        return held.count(b"\r\nmessage\r\n")

    assert wait_for(lambda: arrived() == 3, 5), arrived()
    first = reader.wait(1)
    assert first is not None and first["data"] == b"m0"
    if hasattr(pubsub.connection._parser, "_reader"):
        assert pubsub.connection._parser._reader.has_data()
    assert drain(reader) == [b"m1", b"m2"]


def test_a_ping_reply_is_a_message(clients: Any) -> None:
    """The listener's health check (PING on the subscription) comes back as a pong message."""
    _, pubsub = clients
    reader = MessageReader(pubsub)
    assert reader.wait(0.05) is None
    pubsub.ping()
    message = reader.wait(5)
    assert message is not None and message["type"] == "pong"


def test_a_closed_connection_raises(redis_url: str, clients: Any) -> None:
    """When the server closes the subscription's connection, the wait raises ConnectionError
    (the listener then reconnects) instead of returning None for ever."""
    client, pubsub = clients
    reader = MessageReader(pubsub)
    assert reader.wait(0.05) is None
    client.client_setname("killer")
    name = f"reader-{time.monotonic_ns()}"
    pubsub.execute_command("CLIENT", "SETNAME", name)
    assert reader.wait(5) is not None  # the SETNAME reply, read as a message
    ids = [c["id"] for c in client.client_list() if c["name"] == name]
    assert ids
    client.client_kill_filter(_id=ids[0])
    with pytest.raises(redis.ConnectionError):
        for _ in range(3):
            reader.wait(5)


def test_a_message_is_the_dict_redis_py_makes(clients: Any) -> None:
    """A published message read by the reader is the dict redis-py's own handle_message()
    returns for it; other replies (a subscribe confirmation) are still redis-py's."""
    client, pubsub = clients
    reader = MessageReader(pubsub)
    assert reader.wait(0.05) is None
    client.publish("ch", b"\x00payload")
    got = reader.wait(5)
    assert got == {"type": "message", "pattern": None, "channel": b"ch", "data": b"\x00payload"}
    assert got == pubsub.handle_message([b"message", b"ch", b"\x00payload"])
    pubsub.subscribe("other")
    confirmation = reader.wait(5)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    assert confirmation["channel"] == b"other"
    client.publish("other", b"x")
    assert reader.wait(5) == {"type": "message", "pattern": None, "channel": b"other", "data": b"x"}


def test_pushes_are_handed_over_without_a_logger(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With RESP3 and hiredis (redis-py's defaults), the parser hands pushes to the reader
    as they are, without redis-py's handler, which looks a logger up and logs each message
    at debug."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    pubsub = client.pubsub()
    try:
        pubsub.subscribe("ch")
        assert wait_for(lambda: pubsub.get_message(timeout=0.2) is not None, 5)
        connection: Any = pubsub.connection
        parser = connection._parser
        assert hasattr(parser, "_reader"), f"hiredis is not installed ({type(parser).__name__})"
        calls: list[Any] = []

        def handler(response: Any) -> Any:
            calls.append(response)
            return response

        monkeypatch.setattr(parser, "handle_pubsub_push_response", handler)
        parser.set_pubsub_push_handler(parser.handle_pubsub_push_response)
        reader = MessageReader(pubsub)
        assert reader.wait(0.05) is None
        client.publish("ch", b"m")
        message = reader.wait(5)
        assert message is not None and message["data"] == b"m"
        assert calls == []
    finally:
        pubsub.close()
        client.close()
