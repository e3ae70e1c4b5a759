"""Fixtures of both suites: a ProbeManager of the test's own, a key prefix, the process's
outbox, and a UDP socket that receives the DogStatsD metrics. The servers are
tests/integration/conftest.py's."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import diagnose
    from diagnose.outbox import Outbox


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to the test."""
    return f"t{os.getpid()}-{request.node.name[:40]}"


@pytest.fixture
def manager() -> Iterator[diagnose.ProbeManager]:
    """A ProbeManager of the test's own, with the test instrument type."""
    import diagnose

    mgr = diagnose.ProbeManager()
    mgr.instrument_classes["test"] = diagnose.ProbeTestInstrument
    yield mgr
    with mgr.lock:
        mgr.specs.clear()
        mgr.apply()


@pytest.fixture
def statsd() -> Iterator[socket.socket]:
    """A UDP socket on a free loopback port, where diagnose sends its metrics."""
    import diagnose

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    diagnose.configure_statsd("127.0.0.1", sock.getsockname()[1])
    try:
        yield sock
    finally:
        diagnose.configure_statsd()
        sock.close()


@pytest.fixture
def outbox() -> Iterator[Outbox]:
    """The process's outbox, open, emptied before and after."""
    from diagnose.outbox import OUTBOX

    OUTBOX.clear()
    OUTBOX.open()
    yield OUTBOX
    OUTBOX.close()
    OUTBOX.clear()
