"""`coordinator demo`: the newcomer's tour runs to the end by itself, on its own Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from support.cli import COORDINATOR


def _processes_with_marker(marker: str) -> list[int]:
    """Return the pids of live processes whose environment holds marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.timeout(200)
def test_demo_tells_the_whole_story_and_leaves_nothing_running() -> None:
    """The demo exits 0 within 90 s (checked against twice that, for a loaded machine),
    shows apply, output, expiry and detach, and stops all."""
    marker = f"demo-test-{uuid.uuid4()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIAGNOSE_")}
    env["DEMO_TEST_MARKER"] = marker
    started = time.monotonic()
    result = subprocess.run(
        [COORDINATOR, "demo"], env=env, capture_output=True, text=True, timeout=190
    )
    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert elapsed < 2 * 90
    assert "Started a private redis-server" in out
    assert "3 processes online." in out
    for n in (1, 2, 3):
        assert f"worker-{n}  cart-total  applied" in out
        # Read from the output stream (`coordinator tail -f`), not from the workers' stdout.
        assert re.search(rf"Z  worker-{n}  cart-total  {{'items': \d+, 'discount'", out)
        assert re.search(rf"Z  worker-{n}  cart-snapshot  snapshot: {{\"self\":", out)
        assert re.search(rf"Z  worker-{n}  cart-line      {{'gross': ", out)
        assert f"[worker-{n}] probe detached from shop.pricing.total" in out
        assert f"[worker-{n}] probe detached from shop.pricing.Cart.checkout" in out
    assert "Probe (" not in out
    # One line per sweep of serve: "published removal of a" or "... of a, b".
    removed = {
        spec_id
        for listed in re.findall(r"published removal of (.+)$", out, re.MULTILINE)
        for spec_id in listed.strip().split(", ")
    }
    assert {"cart-total", "cart-snapshot", "cart-line"} <= removed
    assert "Output stream entries in the last 2s: 0." in out
    assert "Traceback" not in out + result.stderr
    assert _processes_with_marker(marker) == []


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_interrupted_demo_stops_every_process_it_started(signum: signal.Signals, code: int) -> None:
    """Ctrl-C or SIGTERM in the demo stops its Redis, service and workers; exit 130 or 143."""
    marker = f"demo-test-{uuid.uuid4()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIAGNOSE_")}
    env["DEMO_TEST_MARKER"] = marker
    proc = subprocess.Popen(
        [COORDINATOR, "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "cart-total  {'items': " in line:
                break
        assert len(_processes_with_marker(marker)) >= 5
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        "Error: interrupted: the demo stopped every process it started"
    )
    assert _processes_with_marker(marker) == []
