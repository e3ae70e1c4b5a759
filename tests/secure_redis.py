"""Redis as production runs it, for the ACL and TLS tests: certificates, a TLS server, and a
whole fleet's round trip (a worker, every `coordinator` command, `serve`) over one URL."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from coordinator._embedded import _free_port, find_redis_server
from probe_targets.support import wait_for
from test_subscriber_fleet import Worker

COORDINATOR = str(Path(sys.executable).parent / "coordinator")
DEBIAN_HINT = (
    "the TLS tests need a redis-server built with TLS on PATH, such as Debian's redis-server 7 "
    "(apt-get install redis-server; .ci/run installs it)"
)


def make_certificates(directory: Path) -> dict[str, Path]:
    """Write a CA, and a server certificate it signed for localhost and 127.0.0.1, as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "diagnose-fleet test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem"}
    paths["key"] = directory / "server.key"
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class TLSRedisServer:
    """A redis-server that speaks TLS only, on a free loopback port, with its own CA."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="diagnose-tls-"))
        self.port = _free_port()
        self.certs = make_certificates(self.dir)
        self.log = self.dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self.binary = shutil.which("redis-server") or find_redis_server()
        except FileNotFoundError:
            pytest.fail(f"no redis-server found: {DEBIAN_HINT}", pytrace=False)

    def url(self, scheme_and_user: str = "rediss://", **query: str) -> str:
        """Return the server's URL with the CA and certificate checks in its query."""
        options = {"ssl_ca_certs": quote(str(self.certs["ca"])), "ssl_cert_reqs": "required"}
        options.update(query)
        text = "&".join(f"{k}={v}" for k, v in options.items() if v)
        return f"{scheme_and_user}127.0.0.1:{self.port}/0?{text}"

    def start(self, timeout: float = 10.0) -> TLSRedisServer:
        """Start the server and wait until it answers PING over TLS; fail saying what lacks."""
        args = [
            self.binary,
            *("--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(self.certs["cert"]), "--tls-key-file", str(self.certs["key"])),
            *("--tls-ca-cert-file", str(self.certs["ca"]), "--tls-auth-clients", "no"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.dir)),
            *("--notify-keyspace-events", "Ex", "--loglevel", "warning", "--logfile", ""),
        ]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        client = redis.Redis.from_url(self.url(), socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    said = self.log.read_text(errors="replace").strip()[-500:]
                    pytest.fail(
                        f"{self.binary} cannot serve TLS (exit {self.process.returncode}: "
                        f"{said}): {DEBIAN_HINT}",
                        pytrace=False,
                    )
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"{self.binary} did not answer over TLS: {DEBIAN_HINT}")
                time.sleep(0.05)
        finally:
            client.close()

    def cleanup(self) -> None:
        """Stop the server and remove its files."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def coordinator(url: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `coordinator` with url and prefix in its environment."""
    env = {**os.environ, "DIAGNOSE_REDIS_URL": url, "DIAGNOSE_PREFIX": prefix}
    env.pop("DIAGNOSE_SECRET", None)
    return subprocess.run([COORDINATOR, *args], env=env, capture_output=True, text=True, timeout=40)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """Check that a coordinator command exited 0 without a word on errors; return stdout."""
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    assert "Error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def exercise_fleet(url: str, prefix: str, *, serve_says: str = "") -> None:
    """Run a worker, `coordinator serve` and every coordinator command over url; check each
    (serve's log must hold serve_says, and no warning)."""
    env = {**os.environ, "DIAGNOSE_REDIS_URL": url, "DIAGNOSE_PREFIX": prefix}
    env.pop("DIAGNOSE_SECRET", None)
    serve = subprocess.Popen(
        [COORDINATOR, "serve", "--sweep-interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = Worker(url, prefix, "--process-id", "w-1")
    worker_err = serve_err = ""
    try:
        assert serve.stderr is not None and "serving" in serve.stderr.readline()
        published = ok(
            coordinator(
                url,
                prefix,
                "publish",
                "p1",
                "-t",
                "fleet_worker.work",
                "--value",
                "x * 10",
                "--wait",
                "--timeout",
                "20",
            )
        )
        assert published.strip() == "p1"
        assert worker.call(2) == ["Probe (p1) = 20"]
        status = json.loads(ok(coordinator(url, prefix, "status", "p1", "--json")))
        assert status["processes"]["w-1"]["specs"]["p1"]["state"] == "applied", status
        listed = ok(coordinator(url, prefix, "list"))
        assert "p1" in listed and "fleet_worker.work" in listed
        assert "w-1" in ok(coordinator(url, prefix, "processes"))
        # serve turns the expired key into a removal the worker applies.
        ok(
            coordinator(
                url,
                prefix,
                "publish",
                "short",
                "-t",
                "fleet_worker.work",
                "--value",
                "x",
                "--lifespan",
                "0.02",
            )
        )
        client = redis.Redis.from_url(url)
        try:
            indexed = lambda: client.sismember(f"{prefix}:ids", "short")  # noqa: E731
            assert wait_for(lambda: not indexed(), 15, 0.05), "serve did not remove short"
        finally:
            client.close()
        assert ok(coordinator(url, prefix, "remove", "p1")) == "p1\n"
        assert wait_for(lambda: worker.call(2) == [], 10, 0.1)
        assert ok(coordinator(url, prefix, "list")).strip() == "No specs."
    finally:
        worker_err = worker.close()
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
        try:
            _, serve_err = serve.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.communicate()
    assert serve.returncode == 0, serve_err
    assert "published removal of short" in serve_err, serve_err
    assert "WARNING" not in serve_err and "ERROR" not in serve_err, serve_err
    # What serve says of the ACL comes from its expired-key listener, which a loaded machine
    # may not have run before the stop; when it did run, it said this (and never a warning).
    assert serve_says in serve_err or "expired-key" not in serve_err, serve_err
    assert "diagnose_redis (" not in worker_err, worker_err
