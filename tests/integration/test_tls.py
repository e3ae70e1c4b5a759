"""A fleet over TLS: the embedded server behind a real TLS terminator (support.tls), with
certificates of the test's own CA."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.cli import coordinator, ok
from support.secure_redis import exercise_fleet
from support.tls import TLSRedisServer


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TLSRedisServer]:
    """A TLS-only server with a CA and a server certificate made for the test."""
    server = TLSRedisServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


def test_a_fleet_works_end_to_end_over_rediss(tls_redis: TLSRedisServer) -> None:
    """Over rediss:// with the CA in the URL, a worker applies what publish --wait sends,
    and status, list, processes, remove and serve all work, every connection over TLS."""
    assert tls_redis.terminator is not None
    before = len(tls_redis.terminator.versions)
    exercise_fleet(tls_redis.url(), "tls")
    versions = tls_redis.terminator.versions[before:]
    # The worker, serve and each command connected through the TLS port.
    assert len(versions) >= 8 and set(versions) <= {"TLSv1.2", "TLSv1.3"}, versions


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


def test_a_server_that_requires_a_client_certificate_gets_the_one_in_the_url() -> None:
    """Where the server requires a client certificate, the URL's ssl_certfile and
    ssl_keyfile present one and the command works; without them it exits 4, one line."""
    server = TLSRedisServer(require_client_cert=True)
    try:
        server.start()
        with_cert = server.url(**server.client_cert_query())
        assert ok(coordinator(with_cert, "mtls", "list")).strip() == "No specs."
        result = coordinator(server.url(), "mtls", "list")
        assert result.returncode == 4, (result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    finally:
        server.cleanup()
