"""Every table fits 80 columns with a 32-character spec ID (the longest a person types) next
to long process ids, keeping the IDs whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.cli import LONG_ERROR, Cli

SPEC = "checkout-total-by-region-eu-west"
PROCESSES = ("web-1:4242", "ip-10-0-12-34:123456", "shop-web-7d9f8b6c5-x2x9k:1")


@pytest.fixture
def run(redis_url: str, prefix: str) -> Iterator[Cli]:
    """A CLI runner bound to the test's Redis and prefix, with a 32-character spec ID
    reported by three processes, one of them with an error."""
    cli = Cli(redis_url, prefix)
    code, _, stderr = cli("publish", SPEC, "--target", "shop.pricing.total", "--value", "result")
    assert code == 0, stderr
    for process in PROCESSES:
        cli.report(process, SPEC, LONG_ERROR if process.startswith("ip-") else None)
    yield cli
    cli.client.close()


@pytest.mark.parametrize(
    "command",
    [["status"], ["status", SPEC], ["status", "--summary"], ["list"], ["processes"]],
    ids=["status", "status-id", "summary", "list", "processes"],
)
def test_tables_fit_80_columns_with_a_32_character_spec_id(run: Cli, command: list[str]) -> None:
    """No line of the table is wider than 80; the spec ID and process ids are whole."""
    assert len(SPEC) == 32
    code, stdout, _ = run(*command)
    assert code == 0
    table = stdout.split("\n\n")[0]
    lines = table.splitlines()
    assert lines and all(len(line) <= 80 for line in lines), "\n" + table
    if command[0] == "status" or command == ["list"]:
        assert SPEC in table
    if command[0] == "status" and "--summary" not in command:
        for process in PROCESSES:
            assert any(line.split()[0] == process for line in lines), table


def test_status_too_wide_for_one_row_per_spec_groups_rows_under_the_spec(run: Cli) -> None:
    """At 80 columns the rows go under a line naming the spec; wider, one row per spec."""
    _, narrow, _ = run("status")
    lines = narrow.split("\n\n")[0].splitlines()
    assert lines[0].split()[:3] == ["PROCESS", "STATE", "LIVE"]
    assert lines[1] == f"{SPEC}:"
    rows = {line.split()[0]: line.split()[1] for line in lines[2:]}
    assert rows == {"web-1:4242": "applied", "ip-10-0-12-34:123456": "error",
                    "shop-web-7d9f8b6c5-x2x9k:1": "applied"}  # fmt: skip
    _, wide, _ = run("status", columns=140)
    first = wide.splitlines()
    assert first[0].split()[:3] == ["PROCESS", "SPEC", "STATE"]
    assert all(line.split()[1] == SPEC for line in first[1:4])
