"""connect() against a real Redis: options passed, the connection named, replies decoded."""

from __future__ import annotations

from diagnose_redis import connect, database


def test_connect_passes_options_and_names_the_connection(redis_url: str) -> None:
    """The client uses the given timeouts, database and name on a real server."""
    url = redis_url.rsplit("/", 1)[0] + "/3"
    client = connect(url, socket_timeout=4, socket_connect_timeout=1, client_name="t:one two")
    try:
        assert client.ping()
        assert client.client_getname() in ("t:one_two", b"t:one_two")
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 4 and kwargs["socket_connect_timeout"] == 1
        assert database(client) == 3
    finally:
        client.close()


def test_connect_decodes_responses_when_asked(redis_url: str) -> None:
    """decode_responses=True gives str replies."""
    client = connect(redis_url, decode_responses=True)
    try:
        client.set("k", "v")
        assert client.get("k") == "v"
    finally:
        client.close()
