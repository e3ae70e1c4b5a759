"""The expression policy against resource bombs, each run in a fresh interpreter that
measures its peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

BOMBS = [
    "'x' * 10**9",
    "[0] * 10**9",
    "10**10**10",
    "sum(range(10**12))",
    "list(range(10**9))",
    "'x'.ljust(10**9)",
    'f"{x:>1000000000}"',
    "'%*d' % (10**9, 1)",
    "'%1000000000d' % 1",
    "'a' * 2**20 * 2**20",
    "[x for x in range(10**12)]",
    "str(10**100000)",
    "1 << 10**9",
    "math.factorial(10**6)",
    "'{:>1000000000}'.format(1)",
    "'{:>{}}'.format(1, 10**9)",
    "format(1, '>1000000000')",
    # the same with the sizes only known when they run
    "s * n",
    "[0] * n",
    "b ** n",
    "b << n",
    "sum(range(n))",
    "list(range(n))",
    "s.ljust(n)",
    "s.center(n)",
    "s.zfill(n)",
    "(s + '\\t').expandtabs(n)",
    "(s * 2**19).replace('x', 'xxxxxxxx')",
    'f"{x:>{n}}"',
    "'%*d' % (n, 1)",
    "s * 2**20 * 2**20",
    "[v for v in range(n)]",
    "str(10 ** n)",
    "bytes(n)",
    "math.factorial(n)",
    "math.prod(range(2, 10**5))",
    "sum([[0] * 100] * 100, [])",
    "'-'.join(s for _ in range(10**6))",
    "[s * 2**20 for _ in range(100)]",
    "[[0] * 2**17 for _ in range(100)]",
    "[1 for i in s * 1000 for j in s * 1000 for k in s * 1000]",
    "[big.count('b') for _ in range(10**6)]",
    "sum(big.count('b') for _ in range(10**6))",
    "max(v for v in range(10**6) for w in range(10**6))",
]


_BOMB_RUNNER = textwrap.dedent(
    """
    import json, math, sys
    from diagnose._safety.policy import Policy
    from diagnose.exceptions import ExpressionRefused

    def status(key):
        with open("/proc/self/status") as lines:
            for line in lines:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024

    def reset_peak():
        # Linux: writing 5 to clear_refs sets the peak RSS (VmHWM) to the current RSS.
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")

    policy = Policy()
    ns = {"math": math, "s": "x", "x": 1, "b": 10, "n": 10**9, "big": "a" * 10**6}
    eval(policy.compile("[v for v in range(10)]", "<warm>"), dict(ns))
    out = []
    for expr in json.loads(sys.argv[1]):
        reset_peak()
        base = status("VmRSS:")
        try:
            eval(policy.compile(expr, "<bomb>"), dict(ns))
            outcome = "accepted"
        except ExpressionRefused as exc:
            outcome = "refused: " + str(exc)
        except Exception as exc:
            outcome = "error: " + type(exc).__name__
        out.append((expr, outcome, status("VmHWM:") - base))
    print(json.dumps(out))
    """
)


def test_bombs_are_refused_within_50mb() -> None:
    """Every bomb is refused (statically or when it runs), and the process's peak RSS while
    it runs is less than 50 MB over its RSS before (a fresh process measures it, resetting
    its peak before each bomb)."""
    done = subprocess.run(
        [sys.executable, "-c", _BOMB_RUNNER, json.dumps(BOMBS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = json.loads(done.stdout)
    assert [r[0] for r in results] == BOMBS
    for expr, outcome, grown in results:
        assert outcome.startswith("refused"), (expr, outcome)
        assert grown < 50 * 2**20, (expr, grown)
