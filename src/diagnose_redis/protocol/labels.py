"""A process's labels, and whether a spec's ``select`` chooses it: one rule for both sides.

Labels are ``name=value`` pairs (``DIAGNOSE_LABELS="service=shop,env=prod"`` or
``start(labels={...})``), plus ``process`` (the process id) and ``host``, always. A spec's
``select`` maps label names to globs (``fnmatch``, case-sensitive), or to lists of globs of
which any may match; a process is chosen when every label of the select matches. A select
naming a label the process lacks does not choose it.
"""

from __future__ import annotations

import fnmatch
import re
import socket
from collections.abc import Mapping
from typing import Any

from diagnose.spec import LABEL_NAME

__all__ = ("RESERVED", "escape_glob", "labels_in", "labels_of", "parse_labels", "selects")

RESERVED = ("process", "host")


def parse_labels(text: str | None) -> dict[str, str]:
    """Read ``"a=1,b=2"`` into a dict; raise ValueError naming a malformed pair."""
    labels: dict[str, str] = {}
    for pair in (text or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not LABEL_NAME.match(name):
            raise ValueError(f"labels must be name=value pairs separated by commas, not {pair!r}")
        labels[name] = value
    return labels


def labels_of(
    given: Mapping[str, Any] | None, process_id: str, host: str | None = None
) -> dict[str, str]:
    """Return a process's labels: those given (as text) plus ``process`` and ``host``."""
    labels = {str(k): str(v) for k, v in (given or {}).items() if k not in RESERVED}
    labels["process"] = process_id
    labels["host"] = host if host is not None else socket.gethostname()
    return labels


def selects(select: object, labels: Mapping[str, str]) -> bool:
    """Tell whether a spec's select chooses a process with these labels (None: all do)."""
    if not select:
        return True
    if not isinstance(select, Mapping):
        return False
    for name, globs in select.items():
        value = labels.get(name)
        if value is None:
            return False
        patterns = globs if isinstance(globs, list | tuple) else [globs]
        if not any(isinstance(g, str) and fnmatch.fnmatchcase(value, g) for g in patterns):
            return False
    return True


def escape_glob(text: str) -> str:
    """Return a glob that matches text alone."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def labels_in(process_id: str, info: object) -> dict[str, str]:
    """Return the labels a process's ``_process`` field declares (process and host always)."""
    info = info if isinstance(info, Mapping) else {}
    declared = info.get("labels")
    labels = {str(k): str(v) for k, v in declared.items()} if isinstance(declared, dict) else {}
    labels["process"] = process_id
    if "host" not in labels and isinstance(info.get("host"), str):
        labels["host"] = info["host"]
    return labels
