"""The command line's one stderr handler for the library's ``logging`` messages.

Library modules log with ``logging.getLogger(__name__)`` (info: progress notes; warning:
warnings); :func:`install` shows them on stderr as ``advscale CMD: message`` lines, the way
commands always wrote them. ``-q`` shows warnings and errors only, ``-v`` adds debug messages.
"""

from __future__ import annotations

import logging
import sys

ROOT = "advscale"
_HANDLER_FLAG = "_advscale_cli"


class _Stderr(logging.StreamHandler):
    """A handler that writes to the *current* ``sys.stderr`` (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # not setStream: that flushes the old one, maybe closed
        super().emit(record)


def install(command: str, *, quiet: bool = False, verbose: bool = False) -> logging.Handler:
    """Route the ``advscale`` loggers to stderr as ``advscale COMMAND: message`` lines."""
    logger = logging.getLogger(ROOT)
    for h in [h for h in logger.handlers if getattr(h, _HANDLER_FLAG, False)]:
        logger.removeHandler(h)
    handler = _Stderr()
    setattr(handler, _HANDLER_FLAG, True)
    prefix = f"advscale {command}: ".replace("%", "%%") if command else "advscale: "
    handler.setFormatter(logging.Formatter(prefix + "%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    return handler


def uninstall(handler: logging.Handler) -> None:
    """Remove the handler :func:`install` returned (the command is over)."""
    logger = logging.getLogger(ROOT)
    logger.removeHandler(handler)
    if not any(getattr(h, _HANDLER_FLAG, False) for h in logger.handlers):
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def note(message: str) -> None:
    """A CLI note at info level (hidden by ``-q``), through the same handler."""
    logging.getLogger(ROOT + ".cli").info(message)


def warn(message: str) -> None:
    """A CLI warning (shown even with ``-q``), through the same handler."""
    logging.getLogger(ROOT + ".cli").warning(message)
