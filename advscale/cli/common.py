"""Helpers shared by the subcommands: error handling, stderr console, option parsing.

Nothing here imports torch; subcommands import heavy modules inside their functions.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import sys
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import typer

from advscale import api
from advscale.errors import AdvscaleError

F = TypeVar("F", bound=Callable[..., Any])


def err(message: str) -> None:
    """Write one human line to stderr (stdout is for data only)."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``advscale: error: MESSAGE`` on stderr and return a typer.Exit to raise."""
    first = " ".join(str(message).split("\n")[0].split())
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


def flag_for(field: str) -> str:
    """The command-line flag of a request field: the one field → flag map of the CLI.

    The flag a field declares (``option(flag=...)``) in any request class of the API, else
    ``--`` + the name with ``_`` → ``-`` (``eval_data`` → ``--eval-data``).
    """
    for cls in api.REQUESTS:
        spec = api.options.field_spec(cls, field)
        if spec is not None and spec.flag:
            return spec.flag
    return "--" + field.replace("_", "-")


def flag_message(message: str, field: str | None) -> str:
    """``message`` with the first mention of each field it names (``eps``; ``data,samples``)
    written as that field's flag (``--eps``): library errors name fields, users typed flags."""
    for name in filter(None, (field or "").split(",")):
        pattern = rf"(?<![\w.\-/]){re.escape(name)}(?![\w\-/])"
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
    exits 130 and a closed stdout pipe exits quietly. Anything else is a bug and keeps its
    traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except BrokenPipeError:  # e.g. `advscale ... | head`
            _quiet_stdout()
            raise typer.Exit(0) from None
        except (AdvscaleError, OSError, UnicodeError, RecursionError, MemoryError) as e:
            raise fail(error_message(e) or str(e), getattr(e, "exit_code", 2)) from None

    return wrapper  # type: ignore[return-value]


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
