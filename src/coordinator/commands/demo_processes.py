"""The demo's processes: where the example shop is, starting the workers and the service
with their output relayed line by line, waiting on them, and stopping every one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO

import click

from coordinator._context import Settings
from coordinator._errors import OperationFailed, Terminated

__all__ = ("Children", "Relay", "child_env", "examples_dir", "raise_on_sigterm", "wait_until")

STOP_TIMEOUT = 5.0


def examples_dir() -> Path:
    """Find the directory holding the example app `shop`."""
    candidates = []
    if os.environ.get("DIAGNOSE_EXAMPLES"):
        candidates.append(Path(os.environ["DIAGNOSE_EXAMPLES"]))
    here = Path(__file__).resolve().parent
    candidates += [here / "examples", here.parents[1] / "examples", Path.cwd() / "examples"]
    for candidate in candidates:
        if (candidate / "shop" / "worker.py").is_file():
            return candidate
    raise OperationFailed(
        "cannot find the example app (examples/shop): run from the repository "
        "or set DIAGNOSE_EXAMPLES to its examples/ directory"
    )


class Relay:
    """Copy the output of child processes to stdout, one prefixed line at a time."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.lines: list[tuple[float, str, str]] = []
        self._threads: list[threading.Thread] = []

    def say(self, text: str = "", *, bold: bool = False) -> None:
        """Print a line of the demo's own narration."""
        with self.lock:
            click.secho(text, bold=bold)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the children's output back while printing something whole, like a table."""
        with self.lock:
            yield
            sys.stdout.flush()

    def follow(self, label: str, stream: IO[bytes]) -> None:
        """Start a thread that relays stream's lines prefixed with [label]."""
        thread = threading.Thread(
            target=self._pump, args=(label, stream), name=f"relay-{label}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _pump(self, label: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            with self.lock:
                self.lines.append((time.monotonic(), label, line))
                click.echo(f"[{label}] {line}")
        stream.close()

    def count(self, predicate: Callable[[str, str], bool], since: float = 0.0) -> int:
        """Count relayed lines since a monotonic time that match predicate(label, line)."""
        with self.lock:
            return sum(1 for t, label, line in self.lines if t >= since and predicate(label, line))

    def join(self, timeout: float = 2.0) -> None:
        """Wait for the relay threads to drain their streams."""
        for thread in self._threads:
            thread.join(timeout)


class Children:
    """Child processes started by the demo, all stopped at the end whatever happens."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, label: str, argv: list[str], env: dict[str, str]) -> None:
        """Start a child with its output relayed under label."""
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[label] = proc
        assert proc.stdout is not None
        self.relay.follow(label, proc.stdout)

    def check_running(self) -> None:
        """Raise OperationFailed if a child has died."""
        for label, proc in self.processes.items():
            if proc.poll() is not None:
                raise OperationFailed(f"{label} exited early with code {proc.returncode}")

    def stop(self) -> None:
        """Ask every child to stop, then kill the ones that do not."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.relay.join()


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, children: Children
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        children.check_running()
        if time.monotonic() > deadline:
            raise OperationFailed(f"demo: timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def child_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DIAGNOSE_REDIS_URL=settings.url,
        DIAGNOSE_PREFIX=settings.prefix,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    if settings.secret:
        env["DIAGNOSE_SECRET"] = settings.secret
    else:
        env.pop("DIAGNOSE_SECRET", None)
    return env
