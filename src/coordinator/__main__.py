"""Run the command line with `python -m coordinator`."""

from coordinator.cli import main

main()
