"""``import diagnose`` in a fresh interpreter: cheap, and no import circle anywhere."""

from __future__ import annotations

import json
import subprocess
import sys

import diagnose

HEAVY = ("redis", "msgpack", "datadog", "bytecode", "anyio", "click", "rich", "yaml")


def _diagnose_modules() -> list[str]:
    """Return the names of diagnose and every module under it."""
    import pkgutil

    names = ["diagnose"]
    for info in pkgutil.walk_packages(diagnose.__path__, "diagnose."):
        names.append(info.name)
    return sorted(names)


def test_import_pulls_in_no_heavy_modules() -> None:
    """``import diagnose`` in a fresh interpreter imports none of the heavy dependencies."""
    code = "import json, sys, diagnose; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    modules = json.loads(out)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == []
    assert not any(m.startswith(("diagnose_redis", "coordinator")) for m in modules)


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module of diagnose imports cleanly as the first one: no import circle."""
    modules = _diagnose_modules()
    assert "diagnose._gate.gate" in modules and "diagnose.instruments.base" in modules
    code = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'diagnose']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    # One interpreter per module would take seconds: unloading the package between
    # imports gives each module a fresh start just the same.
    out = subprocess.run(
        [sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
