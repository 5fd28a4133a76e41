"""Helpers shared by the subcommands: error handling, stderr console, option parsing.

Nothing here imports torch; subcommands import heavy modules inside their functions.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import typer

from advscale.errors import AdvscaleError

F = TypeVar("F", bound=Callable[..., Any])


def err(message: str) -> None:
    """Write one human line to stderr (stdout is for data only)."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


REPORTED: list[str] = []
"""The error lines printed by :func:`fail` in this process (the entry point prints one for an
interrupt that no command reported)."""

EXIT_STDOUT_CLOSED = 141
"""Exit status when stdout is closed or its reader went away (128 + SIGPIPE, as a shell
reports a program killed by a broken pipe); documented in README.md."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``advscale: error: MESSAGE`` on stderr and return a typer.Exit to raise."""
    first = " ".join(str(message).split("\n")[0].split())
    REPORTED.append(first)
    err(f"advscale: error: {first}")
    return typer.Exit(code)


_ERRNO_HINTS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
}


def os_error_message(e: OSError) -> str:
    """``PATH: cause`` for an OS error (the path when the error names one)."""
    cause = _ERRNO_HINTS.get(e.errno or -1) or e.strerror or str(e) or type(e).__name__
    names = [os.fsdecode(n) for n in (e.filename, e.filename2) if n is not None]
    return f"{' -> '.join(names)}: {cause}" if names else cause


def error_message(e: BaseException) -> str | None:
    """The one-line message of an error the boundary reports, or None for a real bug."""
    if isinstance(e, AdvscaleError):
        if getattr(e, "field", None) == "force":  # the library's "with force" is --force here
            return str(e).replace(" with force", " with --force")
        return str(e)
    if isinstance(e, OSError):
        return os_error_message(e)
    if isinstance(e, UnicodeError):
        return f"input is not valid text ({e})"
    if isinstance(e, RecursionError):
        return "input is nested too deeply"
    if isinstance(e, MemoryError):
        return "out of memory"
    return None


def handle_errors(fn: F) -> F:
    """The error boundary of a command: one ``advscale: error: ...`` line, a non-zero exit.

    AdvscaleError (bad input), every OSError (permissions, not a directory, no space, too many
    open files, ...) and decoding errors become one line naming the path and the cause; Ctrl-C
    exits 130; a closed stdout, or one whose reader went away (`advscale ... | head`), is one
    line and exit 141. Numeric warnings (numpy overflow, ...) become one ``advscale: warning:``
    line each. Anything else is a bug and keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        guard_stdout()
        try:
            with _warnings_as_lines():
                return fn(*args, **kwargs)
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except (StdoutClosed, BrokenPipeError) as e:  # e.g. `advscale ... | head`
            raise stdout_failure(e) or fail(error_message(e) or str(e), 2) from None
        except (AdvscaleError, OSError, UnicodeError, RecursionError, MemoryError) as e:
            raise fail(error_message(e) or str(e), getattr(e, "exit_code", 2)) from None

    return wrapper  # type: ignore[return-value]


class StdoutClosed(AdvscaleError):
    """Something was written to a stdout that is closed (``>&-``)."""

    exit_code = EXIT_STDOUT_CLOSED


def stdout_failure(e: BaseException) -> typer.Exit | None:
    """One line and exit 141 when ``e`` is a closed stdout or a reader gone; else None."""
    if isinstance(e, StdoutClosed):
        return fail(str(e), EXIT_STDOUT_CLOSED)
    if isinstance(e, BrokenPipeError) and _stdout_gone():
        _quiet_stdout()
        return fail("stdout was closed by its reader (broken pipe); the output is incomplete",
                    EXIT_STDOUT_CLOSED)
    return None


class _ClosedStdout(io.TextIOBase):
    """Stands in for a closed stdout (``sys.stdout is None``): every write is StdoutClosed."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not s:
            return 0
        raise StdoutClosed("stdout is closed; nothing could be written (redirect it to a file "
                           "or /dev/null, or write with -o FILE)")

    def flush(self) -> None:
        pass


def guard_stdout() -> None:
    """Make a closed stdout (``>&-``: Python sets sys.stdout to None) fail on first write."""
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()


def _stdout_gone() -> bool:
    """Whether fd 1 is a pipe whose reader has gone (so a BrokenPipeError was stdout's)."""
    try:
        fd = sys.stdout.fileno()
        import select

        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        events = poll.poll(0)
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return isinstance(sys.stdout, _ClosedStdout)
    return any(ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, ev in events)


@contextlib.contextmanager
def _warnings_as_lines():
    """Show each distinct warning once as ``advscale: warning: MESSAGE`` (no source line)."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        text = " ".join(str(message).split())
        if text not in seen:
            seen.add(text)
            err(f"advscale: warning: {text} ({category.__name__})")

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _quiet_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def parse_fraction(text: str, name: str = "value") -> float:
    """Parse ``8/255``, ``0.031`` or ``2e-3`` into a float; AdvscaleError when malformed."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise AdvscaleError(f"{name} {text!r} is not a number or fraction like 8/255") from None
    return value


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse ``--shard i/k`` (0-based i < k) into (i, k); None means (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i_s, k_s = text.split("/")
        i, k = int(i_s), int(k_s)
    except ValueError:
        raise AdvscaleError(f"--shard {text!r} must look like i/k, e.g. 0/4") from None
    if not (k >= 1 and 0 <= i < k):
        raise AdvscaleError(f"--shard {text!r} needs 0 <= i < k")
    return i, k


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets, braces and double quotes."""
    parts, depth, quoted, cur = [], 0, False, []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "[{":
            depth += 1
        elif not quoted and ch in "]}":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (q.strip() for q in parts) if p]


def parse_kwargs(text: str | None, name: str = "--model-kwargs") -> dict[str, Any]:
    """``KEY=VALUE[,KEY=VALUE]`` into a dict; each VALUE is JSON where it parses (``32``,
    ``true``, ``[0.5,0.5,0.5]``, ``null``), else the text. None or empty → ``{}``."""
    out: dict[str, Any] = {}
    for part in _split_top(text or ""):
        key, eq, raw = part.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise AdvscaleError(f"{name} {text!r}: give KEY=VALUE[,KEY=VALUE], e.g. "
                                "img_size=32,patch_size=4")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw.strip()
    return out


class _StderrHandler(logging.Handler):
    """Log records as plain lines on the current ``sys.stderr`` (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err(self.format(record))
        except (OSError, ValueError):  # a closed stderr loses the note, never the result
            pass


def log_to_stderr(verbose: bool = False, quiet: bool = False) -> None:
    """Show the library's ``advscale.*`` log on stderr: warnings only with ``quiet``, info by
    default, debug (what was read, counts) with ``verbose``."""
    logger = logging.getLogger("advscale")
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("advscale: %(message)s"))
        logger.addHandler(handler)
