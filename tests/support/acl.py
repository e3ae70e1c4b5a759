"""The README's Redis ACL line, which the suite runs the fleet under."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ("README", "readme_acl_rules")

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_acl_rules() -> list[str]:
    """Return the rules of the README's `ACL SETUSER diagnose on >PASSWORD ...` line."""
    found = re.search(r"`ACL SETUSER diagnose on >PASSWORD ([^`]+)`", README.read_text())
    assert found, "the README's Security section has no ACL SETUSER line"
    return found.group(1).split()
