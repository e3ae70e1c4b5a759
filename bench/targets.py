"""Functions the benchmarks probe."""


def add13(arg):
    extra = 13
    output = arg + extra
    return output


def line_heavy(n):
    total = 0
    for i in range(n):
        total += i
        total -= 1
    return total


def f0(arg):
    return arg


def f1(arg):
    return arg


def f2(arg):
    return arg


def f3(arg):
    return arg


def f4(arg):
    return arg


def skipped_line(n):
    total = 0
    for i in range(n):
        total += i
        if total < 0:
            total = 0  # never runs: the line probe of the bench sits here
    return total


def refuse(arg):
    raise ValueError(f"refused {arg}")


def call_refuse(arg):
    try:
        refuse(arg)
    except ValueError:
        return None
