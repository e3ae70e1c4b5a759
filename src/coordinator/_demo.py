"""`coordinator demo`: the newcomer's tour, on a private Redis with real worker processes."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

import click

from diagnose._time import to_utc, utcnow

from . import _commands
from ._context import Settings, redact
from ._embedded import RedisServer, binary_version, find_redis_server
from ._errors import Interrupted, OperationFailed, Terminated
from ._specs import spec_from_flags
from ._wait import wait_for_spec

__all__ = ("Relay", "examples_dir", "run_demo")

SPEC_ID = "cart-total"
TARGET = "shop.pricing.total"
VALUE = "{'items': sum(items.values()), 'discount': discount, 'total': result}"
WORKER_INTERVAL = "0.8"
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


def _wait_until(
    condition: Callable[[], bool], timeout: float, what: str, children: Children
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        children.check_running()
        if time.monotonic() > deadline:
            raise OperationFailed(f"demo: timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _child_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
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


def run_demo(settings: Settings, *, workers: int = 3, lifespan: float = 0.25) -> None:
    """Run the tour; stop every process it started, also on errors and Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    relay = Relay()
    try:
        with contextlib.ExitStack() as stack:
            if settings.redis_url is None:
                server = RedisServer(find_redis_server(prefer_path=False))
                stack.callback(server.cleanup)
                server.start()
                settings = dataclasses.replace(settings, redis_url=server.url, _client=None)
                relay.say(
                    f"Started a private redis-server {binary_version(server.binary)} "
                    f"on {server.url}",
                    bold=True,
                )
            else:
                # Keep the demo's keys apart from a real fleet's on a shared Redis.
                settings = dataclasses.replace(
                    settings, prefix=f"{settings.prefix}-demo", _client=None
                )
                # An unreachable Redis fails here, as every command does (exit 4), before
                # the demo starts anything.
                stack.callback(settings.close)
                settings.client().ping()
                relay.say(f"Using Redis at {redact(settings.url)}, prefix {settings.prefix!r}")
            stack.callback(settings.close)
            children = Children(relay)
            stack.callback(children.stop)
            _tour(settings, relay, children, workers, lifespan)
    except KeyboardInterrupt as exc:
        raise Interrupted.by(exc, "the demo stopped every process it started")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _tour(
    settings: Settings, relay: Relay, children: Children, workers: int, lifespan: float
) -> None:
    started = time.monotonic()
    store: Any = settings.store()
    examples = examples_dir()
    pythonpath = os.pathsep.join(filter(None, [str(examples), os.environ.get("PYTHONPATH")]))
    relay.say(
        f"\n1. Starting `coordinator serve` and {workers} shop workers (examples/shop)", bold=True
    )
    serve_argv = [
        sys.executable,
        "-m",
        "coordinator",
        "serve",
        "--sweep-interval",
        "0.5",
        "--prune-interval",
        "2",
        "--max-age",
        "6",
    ]
    children.start("serve", serve_argv, _child_env(settings, {}))
    _wait_until(
        lambda: relay.count(lambda label, line: label == "serve" and "serving" in line) > 0,
        20,
        "coordinator serve to start",
        children,
    )
    for n in range(1, workers + 1):
        env = _child_env(
            settings,
            {
                "DIAGNOSE_PROCESS_ID": f"worker-{n}",
                "PYTHONPATH": pythonpath,
                "SHOP_INTERVAL": WORKER_INTERVAL,
            },
        )
        children.start(f"worker-{n}", [sys.executable, "-m", "shop.worker"], env)
    _wait_until(lambda: len(store.processes()) >= workers, 30, "the workers' heartbeats", children)
    with relay.held():
        relay.say("\n$ coordinator processes", bold=True)
        _commands.processes(settings, max_age=None, as_json=False)

    relay.say(f"\n2. Publishing a log probe on {TARGET} that lives {lifespan * 60:g}s", bold=True)
    relay.say(
        f"$ coordinator publish {SPEC_ID} --target {TARGET} --type log "
        f'--value "{VALUE}" --lifespan {lifespan:g} --wait',
        bold=True,
    )
    spec = spec_from_flags(
        SPEC_ID,
        target=TARGET,
        itype="log",
        value=VALUE,
        name=SPEC_ID,
        event="return",
        lifespan=lifespan,
        custom={},
    )
    store.put(SPEC_ID, {k: v for k, v in spec.items() if k != "applied"})
    stored = store.get(SPEC_ID) or spec
    live = sorted(store.processes())
    results, in_time = wait_for_spec(store, SPEC_ID, stored["lastmodified"], live, 20)
    with relay.held():
        _commands.print_results({r.process: {SPEC_ID: r} for r in results}, lambda _p: True)
    if not in_time:
        raise OperationFailed("demo: the workers did not apply the probe within 20s")

    relay.say("\n3. The workers print the probe's output", bold=True)
    _wait_until(
        lambda: relay.count(lambda _l, line: line.startswith("Probe (")) >= workers,
        15,
        "probe output",
        children,
    )
    time.sleep(min(3.0, lifespan * 60 / 4))
    with relay.held():
        relay.say("\n$ coordinator list", bold=True)
        _commands.list_specs(settings, as_json=False)
        relay.say("\n$ coordinator status " + SPEC_ID, bold=True)
        _commands.status(settings, SPEC_ID, as_json=False)

    expires = to_utc(stored["lastmodified"]) + _dt.timedelta(minutes=lifespan)
    relay.say("\n4. Waiting for the lifespan to run out", bold=True)
    _wait_until(lambda: utcnow() >= expires, lifespan * 60 + 5, "the lifespan", children)
    relay.say(f"The lifespan of {SPEC_ID} ran out at {expires:%H:%M:%S} UTC", bold=True)
    detached = lambda label, line: "probe detached" in line  # noqa: E731
    _wait_until(lambda: relay.count(detached) >= workers, 15, "the workers to detach", children)
    _wait_until(lambda: SPEC_ID not in store.specs(), 10, "serve to remove the spec", children)
    quiet_from = time.monotonic() + 0.5
    time.sleep(2.5)
    after = relay.count(lambda _l, line: line.startswith("Probe ("), since=quiet_from)
    with relay.held():
        relay.say("\n$ coordinator list", bold=True)
        _commands.list_specs(settings, as_json=False)
        relay.say("\n$ coordinator status", bold=True)
        _commands.status(settings, None, as_json=False)
        relay.say(
            f"\nProbe lines in the last 2s: {after}. Every worker detached: "
            f"{TARGET} is the original function again.",
            bold=True,
        )
    if after:
        raise OperationFailed(f"demo: {after} probe line(s) after the workers detached")
    relay.say("\n5. Stopping the workers, the service and Redis", bold=True)
    children.stop()
    relay.say(f"Demo finished in {time.monotonic() - started:.0f}s.", bold=True)
