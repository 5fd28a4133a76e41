"""The one exception type users see.

Library code raises :class:`AdvscaleError` for bad input (a wrong shape, a truncated file, an
unknown name). The CLI prints its message as one line on stderr and exits non-zero; a notebook
gets an ordinary exception.

Library messages name a setting by its *field* name (``eps``, ``eval_data``), never by a
command-line flag: a notebook caller never typed ``--eps``. Pass ``field=`` when one setting is
at fault; the CLI maps the field to its flag in one place.
"""

from __future__ import annotations

import os
import sys


class AdvscaleError(Exception):
    """A user-facing error: its message is a complete, one-line explanation.

    ``field``: the name of the request field at fault (e.g. ``"eps"``), or None.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _interrupted_hook(kind, value, tb, _previous=None):  # noqa: ANN001 - sys.excepthook's
    """A KeyboardInterrupt reaching the top level: one line, exit 130; else as before."""
    if not issubclass(kind, KeyboardInterrupt):
        return (_previous or sys.__excepthook__)(kind, value, tb)
    try:
        sys.stderr.write("advscale: error: interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


def install_interrupt_hook(only_for_the_cli: bool = True) -> None:
    """Make a Ctrl-C that lands before any command's error boundary (while the command line is
    still being imported) one ``advscale: error: interrupted`` line and exit 130.

    ``only_for_the_cli``: install only when this process is ``advscale`` / ``python -m
    advscale`` (a notebook importing advscale keeps Python's own Ctrl-C behaviour).
    """
    if only_for_the_cli and not _is_cli_process():
        return
    if getattr(sys.excepthook, "__name__", "") != "_hook":
        previous = sys.excepthook

        def _hook(kind, value, tb):  # noqa: ANN001
            return _interrupted_hook(kind, value, tb, previous)

        sys.excepthook = _hook


def _is_cli_process() -> bool:
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    orig = list(getattr(sys, "orig_argv", []))
    module = orig[orig.index("-m") + 1] if "-m" in orig[:-1] else None
    return argv0 == "advscale" or module == "advscale"
