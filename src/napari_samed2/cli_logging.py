"""How the command line shows the package's log records: ``-v`` for INFO, ``-vv`` for DEBUG.

Library modules only log (to loggers under ``napari_samed2``); the commands decide where the
records go: stderr, so that a command's results on stdout stay clean for pipes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

PACKAGE_LOGGER = "napari_samed2"
LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_verbosity_option(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """Add ``-v/--verbose`` (repeatable) to ``parser``.

    Sub-commands get it too, so ``samed2 propagate -v ...`` works like ``samed2 -v propagate``;
    there its default is left unset, so it does not undo a ``-v`` given before the command.
    """
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top_level else argparse.SUPPRESS,
        help="log progress to stderr: -v for INFO, -vv for DEBUG (default: warnings only)",
    )


@contextlib.contextmanager
def log_to_stderr(verbosity: int) -> Iterator[None]:
    """Show the package's records on stderr while a command runs.

    WARNING and up by default, INFO with ``verbosity`` 1, DEBUG with 2 or more. The package
    logger's level and handlers are restored afterwards, so running ``main()`` in a process
    that configured logging itself (a notebook, a test run) leaves that configuration alone.
    """
    level = LEVELS[min(max(int(verbosity), 0), len(LEVELS) - 1)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    package = logging.getLogger(PACKAGE_LOGGER)
    previous_level = package.level
    package.addHandler(handler)
    package.setLevel(level)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(previous_level)
