"""The one exception type users see.

Library code raises :class:`AdvscaleError` for bad input (a wrong shape, a truncated file, an
unknown name). The CLI prints its message as one line on stderr and exits non-zero; a notebook
gets an ordinary exception.
"""


class AdvscaleError(Exception):
    """A user-facing error: its message is a complete, one-line explanation."""

    exit_code = 2
