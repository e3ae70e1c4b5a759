"""What an instrument asks of its manager: the protocol, with the default behaviour.

Instruments call four things on their manager (``global_namespace``, ``check_call``,
``get_tags``, ``handle_error``) and fall back to the process's manager when given none.
This module holds that protocol and nothing else of the package, so the instruments
and the manager both import it and neither imports the other.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ("ManagerHooks", "default_manager", "overrides_check_call")


class ManagerHooks:
    """The manager side of an instrument's evaluation; ProbeManager extends it."""

    #: Names every instrument evaluation can read, besides the event's own.
    global_namespace: dict[str, Any] = {}

    def check_call(self, probe: Any, instrument: Any, *args: Any, **kwargs: Any) -> bool:
        """Return True if the instrument should fire for this call (always, by default)."""
        return True

    def get_tags(self) -> dict[str, Any]:
        """Return tags added to every instrument's output (none by default)."""
        return {}

    def handle_error(self, probe: Any = None, instrument: Any = None) -> None:
        """Handle an error an instrument raised while firing (sys.exc_info() holds it)."""


def default_manager() -> Any:
    """Return ``diagnose.manager``, looked up at each call: a framework may replace it."""
    return sys.modules["diagnose"].manager


def overrides_check_call(mgr: Any) -> bool:
    """Return True when mgr's check_call may say no (it is not the default one).

    Compares the bound method's function: that also catches a check_call replaced on the
    instance (mock.patch does that), without touching the instance's __dict__
    (materialising it makes every later attribute read on it slower).
    """
    check = getattr(mgr, "check_call", None)
    return getattr(check, "__func__", None) is not ManagerHooks.check_call
