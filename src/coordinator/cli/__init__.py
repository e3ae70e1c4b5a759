"""The `coordinator` command line: the group (``group``), its commands by what they do
(``publishing``, ``reading``, ``service``) and ``main``, the console script."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from coordinator._errors import Terminated
from coordinator.cli import publishing, reading, service  # noqa: F401  (they add the commands)
from coordinator.cli.group import cli

__all__ = ("cli", "main")


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> None:
    """Run the command line; SIGTERM interrupts it the way Ctrl-C does (exit 143)."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    cli.main(args=argv, prog_name="coordinator")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
