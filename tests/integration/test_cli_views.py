"""What list, status and publish show, in-process on a real Redis: widths, JSON, hidden specs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from support.cli import LONG_ERROR, Cli

LONG_VALUE = "{'items': sum(items.values()), 'discount': discount, 'total': result, 'n': 1}"


@pytest.fixture
def run(redis_url: str, prefix: str) -> Iterator[Cli]:
    """A CLI runner bound to the test's Redis and prefix."""
    runner = Cli(redis_url, prefix)
    yield runner
    runner.close()


def _publish(run: Cli, spec_id: str, target: str = "shop.pricing.total", *extra: str) -> None:
    code, stdout, stderr = run(
        "publish", spec_id, "--target", target, "--value", LONG_VALUE, *extra
    )
    assert (code, stdout) == (0, f"{spec_id}\n"), stderr


def _assert_fits(text: str, width: int) -> None:
    lines = text.splitlines()
    assert lines, "no table printed"
    assert all(len(line) <= width for line in lines), "\n".join(lines)


def test_list_fits_80_columns_and_keeps_ids_whole(run: Cli) -> None:
    """list at 80 columns: one row per spec, the ID whole, a long value cut with …."""
    spec_id = "cart-total-by-region"
    _publish(run, spec_id, "shop.pricing.total_with_a_rather_long_function_name")
    code, stdout, _ = run("list")
    assert code == 0
    _assert_fits(stdout, 80)
    lines = stdout.splitlines()
    assert lines[0].split() == ["ID", "TARGET", "TYPE", "EVENT", "VALUE", "REMAINING"]
    assert len(lines) == 2
    assert lines[1].split()[0] == spec_id
    assert "…" in lines[1]


def test_list_wide_and_json_show_full_values(run: Cli) -> None:
    """--wide adds NAME and LASTMODIFIED and cuts nothing; --json has the full value too."""
    _publish(run, "cart-total")
    code, stdout, _ = run("list", "--wide")
    assert code == 0
    assert LONG_VALUE in stdout and "…" not in stdout
    assert stdout.splitlines()[0].split()[-2:] == ["REMAINING", "LASTMODIFIED"]
    document = json.loads(run("list", "--json")[1])
    assert document["specs"]["cart-total"]["instrument"]["value"] == LONG_VALUE
    assert document["unverified"] == []


def test_status_fits_80_columns_and_gives_errors_in_full_below(run: Cli) -> None:
    """status cuts a long error in the table at 80 columns, and prints it in full below."""
    _publish(run, "broken", "shop.pricing.nope")
    run.report("shop-web-7d9f8b6c5-x2x9k:1", "broken", LONG_ERROR)
    code, stdout, _ = run("status")
    assert code == 0
    _assert_fits(stdout.split("\n\n")[0], 80)
    assert stdout.splitlines()[1].split()[:4] == [
        "shop-web-7d9f8b6c5-x2x9k:1",
        "broken",
        "error",
        "yes",
    ]
    table, below = stdout.split("\n\nErrors in full:\n")
    assert "…" in table and LONG_ERROR not in table
    assert below == f"  broken on shop-web-7d9f8b6c5-x2x9k:1: {LONG_ERROR}\n"
    code, stdout, _ = run("status", "broken")
    assert code == 0
    assert f"  broken on shop-web-7d9f8b6c5-x2x9k:1: {LONG_ERROR}" in stdout.splitlines()
    code, stdout, _ = run("status", "--wide", columns=60)
    assert LONG_ERROR in stdout


def test_status_shows_a_late_process_as_not_live(run: Cli) -> None:
    """A process whose heartbeat is late stays in status with LIVE no and "live": false."""
    _publish(run, "p")
    run.report("stalled-1", "p", None, age=60)
    run.report("fresh-1", "p", None)
    code, stdout, _ = run("status")
    assert code == 0
    rows = {line.split()[0]: line.split()[:4] for line in stdout.splitlines()[1:]}
    assert rows["stalled-1"] == ["stalled-1", "p", "applied", "no"]
    assert rows["fresh-1"] == ["fresh-1", "p", "applied", "yes"]
    processes = json.loads(run("status", "--json")[1])["processes"]
    assert processes["stalled-1"]["live"] is False
    assert processes["fresh-1"]["live"] is True


def test_status_of_an_unknown_id_exits_1_and_an_invalid_id_exits_2(run: Cli) -> None:
    """status UNKNOWN is an error (exit 1) rather than an empty report; a bad ID is usage."""
    code, stdout, stderr = run("status", "UNKNOWN")
    assert (code, stdout) == (1, "")
    assert stderr == "Error: no such spec: UNKNOWN\n"
    code, _, stderr = run("status", "has space")
    assert code == 2
    assert stderr.startswith("Error: invalid spec ID")


def test_publish_and_status_json_share_one_shape(run: Cli) -> None:
    """publish --json and status --json have the same keys, and lastmodified is always there."""
    code, stdout, _ = run("--json", "publish", "p", "--target", "a.b", "--value", "1")
    assert code == 0
    published = json.loads(stdout)
    run.report("web-1", "p", None)
    status = json.loads(run("status", "p", "--json")[1])
    keys = {"ids", "version", "specs", "unverified", "processes"}
    assert set(published) == set(status) == keys
    assert published["ids"] == status["ids"] == ["p"]
    assert published["specs"]["p"]["lastmodified"] == status["specs"]["p"]["lastmodified"]
    entry = status["processes"]["web-1"]
    assert set(entry) == {"live", "heartbeat", "process", "specs"}
    assert set(entry["specs"]["p"]) == {"state", "lm", "err", "at", "fired", "dropped", "errors"}
    assert entry["specs"]["p"]["lm"] == status["specs"]["p"]["lastmodified"]


def test_a_wrong_secret_counts_hidden_specs_and_exits_1(run: Cli) -> None:
    """Specs signed with another secret are counted on stderr, and list/status exit 1."""
    _publish(run, "signed", "a.b", "--secret", "s1")
    _publish(run, "plain", "a.c")
    code, stdout, stderr = run("--secret", "s1", "list")
    assert code == 1
    assert "signed" in stdout and "plain" not in stdout
    assert stderr == (
        "Error: 1 spec is not signed with this secret and not shown: plain "
        "(check --secret or DIAGNOSE_SECRET)\n"
    )
    code, _, stderr = run("list", "--secret", "s2")
    assert code == 1
    assert "2 specs are not signed with this secret and not shown: plain, signed" in stderr
    code, stdout, _ = run("list", "--secret", "s2", "--json")
    assert code == 1
    assert json.loads(stdout)["unverified"] == ["plain", "signed"]
    code, _, stderr = run("status", "--secret", "s2")
    assert code == 1 and "2 specs are not signed" in stderr
    code, _, stderr = run("status", "signed", "--secret", "s2")
    assert code == 1 and "plain" not in stderr and "signed" in stderr


def test_remove_of_another_secrets_spec_asks_for_force(run: Cli) -> None:
    """remove refuses a spec it cannot verify, removing nothing, until --force."""
    _publish(run, "signed", "a.b", "--secret", "s1")
    _publish(run, "mine", "a.c", "--secret", "s2")
    code, stdout, stderr = run("--secret", "s2", "remove", "mine", "signed")
    assert (code, stdout) == (1, "")
    assert "signed: not signed with this secret" in stderr and "--force" in stderr
    assert run("--secret", "s2", "list")[1].count("mine") == 1
    code, stdout, _ = run("--secret", "s2", "remove", "mine", "signed", "--force")
    assert (code, stdout) == (0, "mine\nsigned\n")
    assert run("--json", "list")[1].count('"target"') == 0


def test_processes_names_late_processes_on_stderr(run: Cli) -> None:
    """processes counts the live ones and names the late ones on stderr, and in JSON."""
    run.client.zadd(run.keys.processes, {"fresh-1": time.time(), "stalled-1": time.time() - 60})
    code, stdout, stderr = run("processes")
    assert code == 0
    assert stdout.splitlines()[-1] == "1 process online."
    assert "stalled-1" not in stdout
    assert stderr.startswith("warning: 1 process is late (no heartbeat for over 15s)")
    assert "stalled-1 (last heartbeat 1m0" in stderr
    document = json.loads(run("processes", "--json")[1])
    assert (document["count"], list(document["late"])) == (1, ["stalled-1"])
