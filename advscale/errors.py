"""The one exception type users see.

Library code raises :class:`AdvscaleError` for bad input (a wrong shape, a truncated file, an
unknown name). The CLI prints its message as one line on stderr and exits non-zero; a notebook
gets an ordinary exception.

Library messages name a setting by its *field* name (``eps``, ``eval_data``), never by a
command-line flag: a notebook caller never typed ``--eps``. Pass ``field=`` when one setting is
at fault; the CLI maps the field to its flag in one place.
"""

from __future__ import annotations


class AdvscaleError(Exception):
    """A user-facing error: its message is a complete, one-line explanation.

    ``field``: the name of the request field at fault (e.g. ``"eps"``), or None.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
