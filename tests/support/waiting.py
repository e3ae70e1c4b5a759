"""Polling a condition against a deadline: the tests' only way to wait for something."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ("wait_for", "wait_until")


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005) -> Any:
    """Poll condition until it is true or timeout seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        pause.wait(interval)


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, details: Callable[[], str] = str
) -> Any:
    """Poll condition until it holds and return its value; fail the test after timeout
    seconds, naming what it waited for (and what details() says then)."""
    value = wait_for(condition, timeout, interval=0.05)
    assert value, f"timed out after {timeout}s waiting for {what}: {details()}"
    return value
