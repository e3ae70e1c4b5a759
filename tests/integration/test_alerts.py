"""The lines that tell a person the subscriber cannot work, as a host process prints them."""

from __future__ import annotations

import subprocess
import sys
import threading

import redis

from coordinator.embedded import RedisServer
from support.waiting import wait_for


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter without logging configured."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env
    )


def test_malformed_url_prints_one_line_and_the_host_runs_on() -> None:
    """start() with a typo in the URL writes one line to stderr, masked, and raises nothing."""
    code = (
        "import diagnose_redis\n"
        "s = diagnose_redis.start('htp://user:hunter2@127.0.0.1:6379/0', process_id='web-1')\n"
        "print('host runs', s.running)\n"
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stdout == "host runs False\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "web-1" in lines[0] and "invalid Redis URL" in lines[0]
    assert "hunter2" not in result.stderr and "***" in lines[0]


def test_malformed_url_goes_through_logging_when_configured() -> None:
    """With logging configured by the application, the line is a WARNING record."""
    code = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, format='%(levelname)s %(name)s %(message)s')\n"
        "import diagnose_redis\n"
        "diagnose_redis.start('htp://127.0.0.1:6379/0', process_id='web-1')\n"
    )
    result = run_python(code)
    assert result.stderr == ""
    assert result.stdout.startswith("WARNING diagnose_redis diagnose_redis (web-1): invalid")


def test_refused_password_is_told_and_so_is_recovery(private_redis: RedisServer) -> None:
    """A server refusing the password gets one line; when it accepts, one line says so."""
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("requirepass", "sesame")
    admin.close()
    code = (
        "import sys, diagnose_redis\n"
        f"s = diagnose_redis.start({private_redis.url!r}, process_id='web-1', prefix='a')\n"
        "print('started', flush=True)\n"
        "sys.stdin.readline()\n"
        "print('connected', s.connected.wait(10), flush=True)\n"
        "s.stop()\n"
    )
    err: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None and proc.stdin is not None and proc.stdout is not None
        stderr = proc.stderr
        reader = threading.Thread(target=lambda: err.extend(iter(stderr.readline, "")))
        reader.start()
        try:
            assert wait_for(lambda: len(err) >= 1, 10), "no line about the refused login"
            assert "refused the login" in err[0]
            admin = redis.Redis.from_url(private_redis.url, password="sesame")
            admin.config_set("requirepass", "")
            admin.close()
            proc.stdin.write("go\n")
            proc.stdin.close()
            out = proc.stdout.read()
            proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(5)
    assert "connected True" in out
    assert len(err) == 2 and "again" in err[1], err
