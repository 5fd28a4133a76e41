"""Helpers shared by the subcommands: error handling, stderr console, option parsing.

Nothing here imports torch; subcommands import heavy modules inside their functions.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import io
import os
import re
import sys
import typing
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover
    from click import get_current_context

from advscale import api
from advscale.cli import logs
from advscale.cli.shared import common
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


FLAGS = {"laws": "--law", "filters": "--filter", "stage2_datasets": "--stage2-dataset",
         "interval_s": "--interval"}
"""API parameters whose flag is not ``--`` + the name (request fields declare their own)."""


def flag_for(field: str) -> str:
    """The command-line flag of a request field: the one field → flag map of the CLI.

    The flag a field declares (``option(flag=...)``) in any request class of the API (or a
    law approach's own options), else
    ``--`` + the name with ``_`` → ``-`` (``eval_data`` → ``--eval-data``).
    """
    for cls in (*api.REQUESTS, *api.approach_option_classes()):
        spec = api.options.field_spec(cls, field)
        if spec is not None and spec.flag:
            return spec.flag
    return FLAGS.get(field) or "--" + field.replace("_", "-")


def flag_message(message: str, field: str | None) -> str:
    """``message`` with the first mention of each field it names (``eps``; ``data,samples``)
    written as that field's flag (``--eps``): library errors name fields, users typed flags."""
    for name in filter(None, (field or "").split(",")):
        pattern = rf"(?<![\w.\-/]){re.escape(name)}(?![\w\-]|\.\w)"
        message = re.sub(pattern, flag_for(name).replace("\\", "\\\\"), message, count=1)
    return message


def error_message(e: BaseException) -> str | None:
    """The one-line message of an error the boundary reports, or None for a real bug."""
    if isinstance(e, AdvscaleError):
        return flag_message(str(e), e.field)
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
    line each. Anything else is a bug and keeps its traceback. The command also gets the shared
    ``-q/--quiet`` and ``-v/--verbose`` options (passed on when it declares them itself), which
    set the level of the one stderr handler of the library's log messages
    (:mod:`advscale.cli.logs`).
    """
    sig = inspect.signature(fn)
    own = set(sig.parameters)
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                               default=common(name))
             for name in ("quiet", "verbose") if name not in own]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        quiet = kwargs["quiet"] if "quiet" in own else kwargs.pop("quiet", False)
        verbose = kwargs["verbose"] if "verbose" in own else kwargs.pop("verbose", False)
        handler = logs.install(_command_name(), quiet=bool(quiet), verbose=bool(verbose))
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
        finally:
            logs.uninstall(handler)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
              if p.kind == inspect.Parameter.VAR_KEYWORD else p for p in sig.parameters.values()]
    params = [p for p in params if p.kind != inspect.Parameter.VAR_KEYWORD]
    wrapper.__signature__ = sig.replace(parameters=[*params, *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**typing.get_type_hints(fn), **{p.name: bool for p in extra}}
    return wrapper  # type: ignore[return-value]


def _command_name() -> str:
    """``train`` or ``data import``: the command path without the program's name."""
    ctx = get_current_context(silent=True)
    if ctx is None:
        return ""
    words = ctx.command_path.split()
    return " ".join(words[words.index("advscale") + 1:] if "advscale" in words else words[1:])


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


parse_kwargs = api.options.parse_kwargs
"""``KEY=VALUE[,KEY=VALUE]`` with JSON values (:func:`advscale.core.options.parse_kwargs`)."""
