"""Tests of _connect: the one place a Redis URL becomes a client."""

from __future__ import annotations

import pytest
import redis

import diagnose_redis
from diagnose_redis import BadURL, connect, database, redact_url
from diagnose_redis.connection.urls import client_name, parse_topology


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:pw@h:6379/0", "redis://user:***@h:6379/0"),
        ("rediss://:pw@h/0", "rediss://:***@h/0"),
        ("redis://h:6379/0?password=pw&db=1", "redis://h:6379/0?password=***&db=1"),
        ("unix:///tmp/r.sock?db=2", "unix:///tmp/r.sock?db=2"),
    ],
)
def test_redact_url_masks_passwords(url: str, shown: str) -> None:
    """A password in the authority or the query string is shown as ***."""
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "kind", "tls", "nodes", "service", "db", "password"),
    [
        ("redis+sentinel://u:secret@h:26379/mm/2", "sentinel", False, 1, "mm", 2, "secret"),
        ("rediss+sentinel://h:26379,g:26380/m", "sentinel", True, 2, "m", 0, None),
        ("redis+cluster://h:7000,h:7001", "cluster", False, 2, None, 0, None),
        ("rediss+cluster://:pw@[::1]:7000", "cluster", True, 1, None, 0, "pw"),
    ],
)  # fmt: skip
def test_sentinel_and_cluster_urls_are_parsed(url, kind, tls, nodes, service, db, password) -> None:
    """A Sentinel or Cluster URL names its nodes, service, database and credentials."""
    topology = parse_topology(url)
    assert topology is not None
    assert (topology.kind, topology.tls, len(topology.nodes)) == (kind, tls, nodes)
    assert (topology.service, topology.db, topology.password) == (service, db, password)
    assert parse_topology("redis://h:6379/0") is None


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://u:secret@h:26379",
        "redis+sentinel://h:26379/m/x",
        "redis+cluster://h:7000/3",
        "redis+cluster://h",
        "redis+cluster://h:7000?bogus=1",
        "redis+sharded://h:7000",
    ],
)
def test_unusable_sentinel_and_cluster_urls_raise_bad_url(url: str) -> None:
    """A Sentinel or Cluster URL that misses a part raises BadURL on one line, no password."""
    with pytest.raises(BadURL) as caught:
        connect(url)
    text = str(caught.value)
    assert "\n" not in text and "secret" not in text


@pytest.mark.parametrize("url", ["htp://h:6379/0", "redis://127.0.0.1:notaport/0", "nothing"])
def test_malformed_url_raises_bad_url(url: str) -> None:
    """A URL redis-py cannot parse raises BadURL, which is a ValueError."""
    with pytest.raises(BadURL) as caught:
        connect(url)
    assert isinstance(caught.value, ValueError) and str(caught.value)


def test_client_name_keeps_printable_ascii_only() -> None:
    """Spaces and other characters CLIENT SETNAME refuses become underscores."""
    assert client_name("diagnose:web 1:é\n42") == "diagnose:web_1:__42"


def test_connect_async_builds_an_asyncio_client() -> None:
    """connect_async returns a redis.asyncio client with the same options."""
    client = diagnose_redis.connect_async("redis://127.0.0.1:1/5", socket_connect_timeout=1)
    assert isinstance(client, redis.asyncio.Redis) and database(client) == 5
    assert diagnose_redis.connect_async("redis+cluster://h:1").connection_pool is not None


def test_public_names_exist() -> None:
    """Every name in diagnose_redis.__all__ exists, and __all__ is a tuple without repeats."""
    assert isinstance(diagnose_redis.__all__, tuple)
    assert len(set(diagnose_redis.__all__)) == len(diagnose_redis.__all__)
    assert [n for n in diagnose_redis.__all__ if not hasattr(diagnose_redis, n)] == []
