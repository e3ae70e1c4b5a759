"""A fleet over TLS: a real redis-server with --tls-port, certificates of the test's own CA."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.cli import coordinator
from support.secure_redis import exercise_fleet
from support.tls import TLSRedisServer


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TLSRedisServer]:
    """A TLS-only redis-server with a CA and a server certificate made for the test."""
    server = TLSRedisServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


def test_a_fleet_works_end_to_end_over_rediss(tls_redis: TLSRedisServer) -> None:
    """Over rediss:// with the CA in the URL, a worker applies what publish --wait sends,
    and status, list, processes, remove and serve all work."""
    exercise_fleet(tls_redis.url(), "tls")


def test_the_server_certificate_is_checked(tls_redis: TLSRedisServer) -> None:
    """Without the CA that signed the server's certificate, the command line refuses to talk
    (exit 4, one line about the certificate); with it, the same command works."""
    untrusted = tls_redis.url(ssl_ca_certs="")
    result = coordinator(untrusted, "tls", "list")
    assert result.returncode == 4, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "certificate" in lines[0], result.stderr
    assert coordinator(tls_redis.url(), "tls", "list").returncode == 0


def test_plain_redis_on_the_tls_port_fails_cleanly(tls_redis: TLSRedisServer) -> None:
    """A redis:// URL to the TLS port is an unreachable Redis, exit 4, never a hang."""
    result = coordinator(f"redis://127.0.0.1:{tls_redis.port}/0", "tls", "list")
    assert result.returncode == 4 and "Traceback" not in result.stderr, result.stderr
