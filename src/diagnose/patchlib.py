"""Helpers for picking a target by its dotted path, kept from the original library.

Only ``dotted_import_autocomplete`` remains: the original's mock-based patching
(``make_patches``, ``WeakMethodPatch``, ``DictPatch``) was replaced by the code swap.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

__all__ = ("dotted_import_autocomplete",)


def _longest_import(parts: list[str]) -> tuple[Any, int]:
    """Import the longest module prefix of parts; return it and how many parts it took."""
    for n in range(len(parts), 0, -1):
        try:
            return importlib.import_module(".".join(parts[:n])), n
        except Exception:
            continue
    raise ImportError(parts[0])


def dotted_import_autocomplete(term: str, limit: int = 20) -> list[str]:
    """Return dotted paths that complete or correct term, for a person picking a target.

    ``term`` itself when it names something; otherwise the names under its parent that
    start with its last part, then the closest spellings (``os.path.jion`` gives
    ``os.path.join``).
    """
    parts = term.split(".")
    try:
        obj, used = _longest_import(parts[:-1] or parts)
    except ImportError:
        return []
    for name in parts[used:-1]:
        obj = getattr(obj, name, None)
        if obj is None:
            return []
    parent = ".".join(parts[:-1])
    last = parts[-1] if len(parts) > 1 else ""
    names = sorted(n for n in dir(obj) if not n.startswith("_"))
    if last in names:
        return [term]
    found = [n for n in names if n.startswith(last)]
    found += [
        n for n in difflib.get_close_matches(last, names, n=limit, cutoff=0.6) if n not in found
    ]
    return [f"{parent}.{n}" if parent else n for n in found[:limit]]
