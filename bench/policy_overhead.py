"""Print the nanoseconds the safe expression policy adds to one evaluation of typical
probe expressions (guarded code against the same expression compiled plainly), and the
time each resource bomb takes to be stopped.

Run: python bench/policy_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import math
import time
import timeit

from diagnose._safety.policy import Policy
from diagnose.exceptions import ExpressionRefused
from diagnose.managers import mag

GLOBALS = {"datetime": datetime, "math": math, "time": time, "mag": mag}
NAMESPACE = {
    "args": (1, 2),
    "kwargs": {"x": 1, "discount": 5},
    "result": 3.5,
    "elapsed": 0.5,
    "now": datetime.datetime(2024, 1, 2, 3, 4, 5),
}
TYPICAL = [
    "result",
    "len(args)",
    "kwargs.get('x')",
    "type(result).__name__",
    "round(elapsed * 1000, 1)",
    "now.isoformat()",
    "{k: v for k, v in kwargs.items() if k != 'x'}",
    "f'{result:.2f}'",
]
BOMBS = [
    "'x' * n",
    "[0] * n",
    "b ** n",
    "sum(range(n))",
    "s.ljust(n)",
    "f'{s:>{n}}'",
    "'%*d' % (n, 1)",
    "[s * 2**20 for _ in range(100)]",
    "[big.count('b') for _ in range(10**6)]",
]


def best_ns(code: object, number: int, rounds: int) -> float:
    """The best of rounds runs, in CPU time (the machine may be shared)."""
    runs = [
        timeit.timeit(
            lambda: eval(code, GLOBALS, NAMESPACE), number=number, timer=time.process_time
        )  # noqa: S307
        for _ in range(rounds)
    ]
    return min(runs) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    options = parser.parse_args()
    number, rounds = (2000, 5) if options.quick else (20000, 25)
    policy = Policy()
    policy.allow(mag)
    print(f"{'expression':48} {'plain':>8} {'safe':>8} {'added':>8}")
    for expr in TYPICAL:
        plain = compile(expr, "<plain>", "eval")
        safe = policy.compile(expr, "<safe>")
        a, b = best_ns(plain, number, rounds), best_ns(safe, number, rounds)
        print(f"{expr:48} {a:6.0f}ns {b:6.0f}ns {b - a:6.0f}ns")
    print()
    names = {"s": "x", "n": 10**9, "b": 10, "big": "a" * 10**6}
    for expr in BOMBS:
        code = policy.compile(expr, "<bomb>")
        started = time.perf_counter()
        try:
            eval(code, dict(names))  # noqa: S307
            outcome = "NOT STOPPED"
        except ExpressionRefused as exc:
            outcome = str(exc).removeprefix("refused at run time: ")
        print(f"{expr:42} {1000 * (time.perf_counter() - started):6.1f} ms  {outcome}")


if __name__ == "__main__":
    main()
