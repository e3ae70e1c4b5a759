"""`coordinator tail` and publish's output flags in-process: argument handling, durations,
and exit codes that need no Redis."""

from __future__ import annotations

import pytest

from coordinator.commands.tail import parse_duration
from support.cli import CLOSED_URL, run


@pytest.mark.parametrize("args", [[], ["-f"], ["--since", "5m"]])
def test_tail_exits_4_when_redis_is_unreachable(args: list[str]) -> None:
    """An unreachable Redis: one line, exit 4, as every command."""
    code, out, err = run("--redis-url", CLOSED_URL, "tail", *args)
    assert code == 4 and out == ""
    assert err.startswith("Error: Redis unreachable") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--since", "soon"], ["--since"]),
        (["--since", "0s"], ["--since"]),
        (["-n", "-1"], ["-n"]),
        (["bad id"], ["spec id"]),
    ],
)
def test_tail_rejects_bad_arguments_with_exit_2(args: list[str], words: list[str]) -> None:
    """Bad arguments exit 2 with one line naming the problem, before Redis is contacted."""
    code, _, err = run("--redis-url", CLOSED_URL, "tail", *args)
    assert code == 2
    assert all(word in err for word in words), err


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations(text: str, seconds: float) -> None:
    """Durations: seconds, or numbers with s, m, h, d, combined."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--value", "x", "--line", "3", "--event", "call"], ["--line", "--event"]),
        (["--value", "x", "--event", "line"], ["--line"]),
        (["--value", "x", "--rate", "0"], ["--rate"]),
        (["--line", "3"], ["--value"]),
        (["--value", "x", "--custom", '{"rate": -1}'], ["rate"]),
    ],
)
def test_publish_rejects_bad_line_and_rate_flags(args: list[str], words: list[str]) -> None:
    """Contradicting or bad --line, --event, --rate: exit 2 naming the problem."""
    code, _, err = run("--redis-url", CLOSED_URL, "publish", "x", "-t", "a.b", *args)
    assert code == 2
    assert all(word in err for word in words), err
