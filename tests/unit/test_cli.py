"""The command line in-process: argument handling, local validation and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import CLOSED_URL, assert_one_line_error, run

GOOD = ["--target", "shop.pricing.total", "--value", "result"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["x", "--target", "nodots", "--value", "1"], ["target", "dotted"]),
        (["x", "--target", "a.b", "--value", "1 +"], ["does not compile"]),
        (["x", "--target", "a.b", "--value", "x.__class__"], ["__class__", "refused"]),
        (["x", "--target", "a.b", "--value", "1", "--event", "later"], ["--event"]),
        (["x", "--target", "a.b", "--value", "1", "--lifespan", "-1"], ["--lifespan"]),
        (["x", "--target", "a.b", "--value", "1", "--lifespan", "soon"], ["--lifespan"]),
        (["x", "--target", "a.b", "--value", "1", "--custom", "{bad"], ["--custom", "JSON"]),
        (["x", "--target", "a.b", "--value", "1", "--custom", "[1]"], ["--custom", "object"]),
        (["x", "--target", "a.b", "--value", "1", "--custom", '{"tags": "1 +"}'], ["tags"]),
        (["x", "--value", "1"], ["--target"]),
        (["x", "--target", "a.b"], ["--value"]),
        (["--target", "a.b", "--value", "1"], ["ID"]),
        (["has space", "--target", "a.b", "--value", "1"], ["spec id"]),
        (["x", "--target", "a.b", "--value", "1", "--timeout", "-2"], ["--timeout"]),
    ],
)
def test_publish_rejects_bad_flags_with_exit_2(args: list[str], words: list[str]) -> None:
    """A bad flag exits 2 with one line naming the problem, before Redis is contacted."""
    code, stdout, stderr = run("--redis-url", CLOSED_URL, "publish", *args)
    assert code == 2
    assert stdout == ""
    assert_one_line_error(stderr, *words)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("bad.json", "{not json", ["not valid JSON"]),
        ("bad.yaml", "a: [unclosed", ["not valid JSON or YAML"]),
        ("list.yaml", "- 1\n- 2\n", ["map of spec ID"]),
        ("empty.yaml", "", ["map of spec ID"]),
        (
            "spec.yaml",
            "p1:\n  target: a.b\n  instrument: {type: log, value: '1 +'}\n",
            ["p1", "does not compile"],
        ),
        ("spec.json", json.dumps({"p1": {"target": "a.b"}}), ["p1", "instrument"]),
        ("spec.json", json.dumps({"p1": "text"}), ["p1", "map"]),
    ],
)
def test_publish_file_rejects_bad_files_with_exit_2(
    tmp_path: Path, name: str, content: str, words: list[str]
) -> None:
    """A file that does not parse or holds an invalid spec exits 2 with one line."""
    path = tmp_path / name
    path.write_text(content)
    code, _, stderr = run("--redis-url", CLOSED_URL, "publish", "--file", str(path))
    assert code == 2
    assert_one_line_error(stderr, *words)


def test_publish_file_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    """A missing --file exits 2 with one line naming the file."""
    code, _, stderr = run("--redis-url", CLOSED_URL, "publish", "--file", str(tmp_path / "no"))
    assert code == 2
    assert_one_line_error(stderr, "no such file")


def test_publish_refuses_file_and_flags_together(tmp_path: Path) -> None:
    """--file with an ID and flags is a usage error, exit 2."""
    path = tmp_path / "s.json"
    path.write_text("{}")
    code, _, stderr = run("--redis-url", CLOSED_URL, "publish", "x", *GOOD, "--file", str(path))
    assert code == 2
    assert_one_line_error(stderr, "--file")


@pytest.mark.parametrize(
    "args",
    [
        ["publish", "x", *GOOD],
        ["remove", "x"],
        ["list"],
        ["status"],
        ["status", "x"],
        ["processes"],
        ["--json", "list"],
    ],
)
def test_unreachable_redis_exits_4(args: list[str]) -> None:
    """Every command exits 4 with one line when Redis cannot be reached."""
    code, stdout, stderr = run("--redis-url", CLOSED_URL, *args)
    assert code == 4
    assert stdout == ""
    assert_one_line_error(stderr, "unreachable", "127.0.0.1:1")


def test_unreachable_redis_url_comes_from_the_environment() -> None:
    """DIAGNOSE_REDIS_URL is used when --redis-url is not given."""
    code, _, stderr = run("list", env={"DIAGNOSE_REDIS_URL": CLOSED_URL})
    assert code == 4
    assert_one_line_error(stderr, "127.0.0.1:1")


def test_password_is_hidden_in_errors() -> None:
    """A password in the Redis URL never appears in an error message."""
    code, _, stderr = run("--redis-url", "redis://user:hunter2@127.0.0.1:1/0", "list")
    assert code == 4
    assert "hunter2" not in stderr
    assert_one_line_error(stderr, "user:***@")


@pytest.mark.parametrize("url", ["http://example.com", "redis://127.0.0.1:notaport/0"])
def test_malformed_redis_url_exits_2(url: str) -> None:
    """A Redis URL that cannot be parsed is bad usage, exit 2."""
    code, _, stderr = run("--redis-url", url, "list")
    assert code == 2
    assert_one_line_error(stderr, "Redis URL")


def test_unknown_command_exits_2() -> None:
    """An unknown command is click's usage error, exit 2."""
    code, _, stderr = run("frobnicate")
    assert code == 2
    assert "No such command" in stderr


def test_bare_coordinator_prints_the_formatted_help() -> None:
    """A bare `coordinator` prints its help as lines, with exit codes and examples, exit 2."""
    code, stdout, stderr = run()
    assert (code, stdout) == (2, "")
    lines = stderr.splitlines()
    assert lines[0].startswith("Usage: coordinator")
    assert not stderr.startswith("Error")
    assert "  Exit codes:" in lines and "  Examples:" in lines
    assert any(line.split()[:1] == ["130"] for line in lines)


def test_help_lists_exit_codes_and_two_examples() -> None:
    """`coordinator --help` lists every exit code and two example commands."""
    code, stdout, _ = run("--help")
    assert code == 0
    codes = [
        line.split()[0]
        for line in stdout.split("Exit codes:")[1].split("Examples:")[0].splitlines()
        if line[:5].strip().isdigit()
    ]
    assert codes == ["0", "1", "2", "3", "4", "130"]
    examples = stdout.split("Examples:")[1].strip().splitlines()
    assert len(examples) == 2 and all(e.strip().startswith("coordinator ") for e in examples)


@pytest.mark.parametrize(
    "command", ["", "publish", "remove", "list", "status", "processes", "serve", "demo"]
)
def test_help_texts_state_defaults_in_one_style(command: str) -> None:
    """Every default is written `[default: X]` (also `[env var: V; default: X]`)."""
    code, stdout, _ = run(*command.split(), "--help")
    assert code == 0
    text = " ".join(stdout.split())
    assert "default: (" not in text
    assert "[default the" not in text and "default redis" not in text
    if command in ("", "publish", "processes"):
        assert "default: " in text


@pytest.mark.parametrize("before", [True, False], ids=["before-the-command", "after-the-command"])
def test_global_options_work_before_or_after_the_command(before: bool) -> None:
    """--redis-url, --prefix, --secret and --json are read on either side of the command."""
    options = ["--redis-url", CLOSED_URL, "--prefix", "p", "--secret", "s", "--json"]
    args = [*options, "list"] if before else ["list", *options]
    code, _, stderr = run(*args, env={"DIAGNOSE_REDIS_URL": "redis://127.0.0.1:2/0"})
    assert code == 4
    assert_one_line_error(stderr, "127.0.0.1:1")


def test_dash_v_is_not_a_short_value_option() -> None:
    """-v means --verbose (serve) only; publish spells --value in full."""
    code, _, stderr = run("--redis-url", CLOSED_URL, "publish", "x", "-t", "a.b", "-v", "1")
    assert code == 2
    assert_one_line_error(stderr, "-v")
    code, stdout, _ = run("serve", "--help")
    assert "-v, --verbose" in stdout


def test_completion_refuses_an_unknown_shell() -> None:
    """An unsupported shell is a usage error naming the choices."""
    code, _, stderr = run("completion", "tcsh")
    assert code == 2
    assert_one_line_error(stderr, "bash", "zsh", "fish")
