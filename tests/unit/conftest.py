"""The unit tests' one rule, kept by a guard around every test: no process is started and no
connection is made, except to ``support.cli.CLOSED_URL``'s port, where nothing listens (the
"Redis unreachable" paths). A test that needs more belongs in tests/integration."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

# The port of support.cli.CLOSED_URL: privileged, so nothing of a test's listens on it.
CLOSED_PORT = 1


class Trespasses:
    """What the guarded test (or a thread it started) tried; each try also fails at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[str] = []

    def refuse(self, what: str, error: type[Exception]) -> Exception:
        """Record what was tried; return the error that refuses it."""
        with self.lock:
            self.seen.append(what)
        return error(f"a unit test may not {what}: move it to tests/integration")


@pytest.fixture(autouse=True)
def no_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Trespasses]:
    """Refuse, and fail the test for, any process started and any TCP connection opened
    (other than to the closed port) during the test."""
    tried = Trespasses()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        return sock.type == socket.SOCK_DGRAM or address[1] == CLOSED_PORT

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            raise tried.refuse(f"connect to {address!r}", ConnectionRefusedError)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(sock, address):
            raise tried.refuse(f"connect to {address!r}", ConnectionRefusedError)
        return real_connect_ex(sock, address)

    def execute_child(self: subprocess.Popen[Any], args: Any, *rest: Any) -> None:
        raise tried.refuse(f"start a process ({args!r})", PermissionError)

    def fork() -> int:
        raise tried.refuse("fork", PermissionError)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(subprocess.Popen, "_execute_child", execute_child)
    monkeypatch.setattr(os, "fork", fork)
    yield tried
    assert not tried.seen, f"a unit test tried: {tried.seen}; move it to tests/integration"
