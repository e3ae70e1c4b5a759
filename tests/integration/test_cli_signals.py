"""The real program under interrupts, a silent server and an 80-column terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from coordinator.cli import cli
from diagnose_redis import Keys
from support.cli import COORDINATOR, coordinator
from support.fleet import Fleet
from support.servers import SilentServer
from support.waiting import wait_for

SILENT_COMMANDS = [
    ["list"],
    ["status"],
    ["status", "p"],
    ["processes"],
    ["remove", "p"],
    ["publish", "p", "-t", "a.b", "--value", "1"],
    ["publish", "p", "-t", "a.b", "--value", "1", "--wait", "--timeout", "30"],
]


@pytest.mark.parametrize("args", SILENT_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_silent_server_fails_every_command_saying_so(
    silent_server: SilentServer, args: list[str]
) -> None:
    """Against a server that accepts and never answers, each command gives up and exits 4,
    saying it had no answer within 2 s (not a wait that times out, exit 3)."""
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["--redis-url", silent_server.url, *args])
    # Generous: it gave up on the silence, long before the --wait --timeout of 30 s.
    assert time.monotonic() - started < 15
    assert result.exit_code == 4, result.output
    assert (
        result.stderr == f"Error: Redis unreachable at {silent_server.url}: no answer within 2s\n"
    )
    assert silent_server.accepted, "the command never connected to the silent server"


def test_the_real_program_gives_up_on_a_silent_server(silent_server: SilentServer) -> None:
    """The installed program exits 4 against a silent server, saying it waited 2 s."""
    result = coordinator(silent_server.url, "p", "list")
    assert result.returncode == 4
    assert result.stderr.startswith("Error: Redis unreachable") and "2s" in result.stderr


def _start_waiting_publish(redis_url: str, prefix: str, spec_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DIAGNOSE_REDIS_URL": redis_url, "DIAGNOSE_PREFIX": prefix}
    env.pop("DIAGNOSE_SECRET", None)
    argv = [COORDINATOR, "publish", spec_id, "-t", "shop.pricing.total", "--value", "result"]
    return subprocess.Popen(
        [*argv, "--wait", "--timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_interrupted_wait_says_what_it_left_and_exits_128_plus_signal(
    redis_url: str, prefix: str, tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    """Ctrl-C or SIGTERM during --wait: the ID was printed, the state left is said, 130/143."""
    fleet = Fleet(redis_url, prefix, tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:
        fleet.start(2)
        # A third process that heartbeats but never applies anything: the wait cannot end.
        client.zadd(Keys(prefix).processes, {"stuck-1": time.time() + 60})
        proc = _start_waiting_publish(redis_url, prefix, "cart-total")
        assert proc.stdout is not None
        assert proc.stdout.readline() == "cart-total\n"

        def both_applied() -> bool:
            reports = fleet.store.status("cart-total").values()
            return sum(1 for r in reports if r.get("cart-total")) == 2

        assert wait_for(both_applied, timeout=20, interval=0.05), "the workers did not apply it"
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        client.close()
        fleet.stop()
    assert proc.returncode == code
    assert stdout == ""
    assert stderr == (
        "Error: interrupted: cart-total is published and live on 2 of 3 processes; "
        "remove it with coordinator remove cart-total\n"
    )
    assert "cart-total" in coordinator(redis_url, prefix, "list").stdout


def test_demo_against_an_unreachable_redis_exits_4_saying_why() -> None:
    """demo with an unreachable DIAGNOSE_REDIS_URL exits 4 with the cause, starting nothing."""
    result = coordinator("redis://127.0.0.1:1/0", "p", "demo")
    assert result.returncode == 4
    assert result.stderr.startswith("Error: Redis unreachable at redis://127.0.0.1:1/0")
    assert "exited early" not in result.stderr


def test_list_in_an_80_column_terminal_breaks_no_word(redis_url: str, prefix: str) -> None:
    """In a real 80-column pseudo-terminal, list's lines fit, the ID whole, cut cells with …."""
    value = "{'items': sum(items.values()), 'discount': discount, 'total': result}"
    published = coordinator(
        redis_url, prefix, "publish", "cart-total-eu", "-t", "shop.pricing.total", "--value", value
    )
    assert published.returncode == 0, published.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "DIAGNOSE_REDIS_URL": redis_url, "DIAGNOSE_PREFIX": prefix}
    env.pop("COLUMNS", None)
    env.pop("DIAGNOSE_SECRET", None)
    proc = subprocess.Popen(
        [COORDINATOR, "list"], env=env, stdout=slave, stderr=subprocess.PIPE, close_fds=True
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the program has exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    _, stderr = proc.communicate(timeout=10)
    assert (proc.returncode, stderr) == (0, b"")
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 2, lines
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[1].split()[0] == "cart-total-eu"
    assert "…" in lines[1]


def test_ctrl_c_in_a_terminal_replaces_the_progress_bar_with_the_error_line(
    redis_url: str, prefix: str
) -> None:
    """In a terminal, --wait shows progress; Ctrl-C leaves the ID, then the Error line, no gap."""
    client = redis.Redis.from_url(redis_url)
    client.zadd(Keys(prefix).processes, {"stuck-1": time.time() + 60})
    client.close()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "DIAGNOSE_REDIS_URL": redis_url, "DIAGNOSE_PREFIX": prefix}
    env.pop("COLUMNS", None)
    env.pop("DIAGNOSE_SECRET", None)
    argv = [COORDINATOR, "publish", "p", "-t", "a.b", "--value", "1", "--wait", "--timeout", "30"]
    proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen = bytearray()

    def progress_shown() -> bool:
        readable, _, _ = select.select([master], [], [], 0.05)
        if readable:
            seen.extend(os.read(master, 4096))
        return b"waiting for p" in seen

    assert wait_for(progress_shown, timeout=15), bytes(seen)
    proc.send_signal(signal.SIGINT)
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen.extend(chunk)
    os.close(master)
    assert proc.wait(10) == 130
    text = bytes(seen).decode()
    assert text.startswith("p\r\n")
    assert text.endswith(
        "\r\x1b[KError: interrupted: p is published and live on 0 of 1 process; "
        "remove it with coordinator remove p\r\n"
    )


@pytest.mark.parametrize("second_read", ["answers", "fails"])
def test_an_interrupt_before_the_wait_still_says_what_it_left(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch, second_read: str
) -> None:
    """Ctrl-C between the publish and the first poll (the fleet may have applied it by then):
    the state left is read once more and told with counts, or, if that read fails too, the
    spec is said to be published, with the command that removes it."""
    import coordinator.commands.publish as commands

    client = redis.Redis.from_url(redis_url)
    client.zadd(Keys(prefix).processes, {"web-1": time.time()})
    real = commands.read_fleet
    calls = []

    def read_fleet(store: object) -> object:
        calls.append(store)
        if len(calls) == 1 or second_read == "fails":
            raise KeyboardInterrupt
        return real(store)

    monkeypatch.setattr(commands, "read_fleet", read_fleet)
    result = CliRunner().invoke(
        cli,
        ["--redis-url", redis_url, "--prefix", prefix, "publish", "early", "-t", "a.b",
         "--value", "1", "--wait"],
    )  # fmt: skip
    client.close()
    assert result.exit_code == 130, result.output
    assert result.stdout == "early\n"
    if second_read == "answers":
        expected = "early is published and live on 0 of 1 process; remove it with"
    else:
        expected = "early is published; remove it with"
    assert result.stderr == f"Error: interrupted: {expected} coordinator remove early\n"
