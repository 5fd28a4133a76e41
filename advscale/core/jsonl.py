"""The append-only JSONL log: one policy for torn last lines, used by every appender.

Every append writes one whole line (``...\\n``) and fsyncs it, so an acknowledged line is never
lost. A crash, a full disk or a power cut can still leave the *last* line unterminated: that line
was never acknowledged. The one policy, everywhere (run records, attack state and results files,
validity labels):

* reading skips an unterminated last line that does not parse (and says so once, through ``log``);
  an unterminated last line that parses is a complete record and is kept;
* appending first cuts such a torn tail off (or terminates a parsable one), so later lines never
  sit behind garbage;
* a malformed *complete* line is corruption: :func:`parse` raises with ``file:line``.

Repairs and appends hold an exclusive advisory lock (``flock``) on the file, so two processes
never cut or interleave each other's lines. An append that fails (a full disk, a read-only
filesystem) is undone: the file is cut back to its size before, and one AdvscaleError names it.

:func:`loads_bounded` is the one JSON decoder of untrusted text: nesting deeper than
:data:`MAX_DEPTH`, integers longer than :data:`MAX_INT_DIGITS` digits, and non-finite numbers
(``NaN``, ``Infinity``, ``1e400``) are one AdvscaleError, never a RecursionError or ValueError.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advscale.errors import AdvscaleError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

MAX_DEPTH = 64
"""Deepest nesting of arrays/objects :func:`loads_bounded` accepts."""
MAX_INT_DIGITS = 64
"""Longest integer literal (digits) :func:`loads_bounded` accepts."""

_STRINGS_OR_PLAIN = re.compile(r'"(?:[^"\\]|\\.)*"?|[^\[\]{}"]+')


class _BadNumber(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _BadNumber(f"integer of {len(text.lstrip('-'))} digits (over {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _BadNumber(f"number {text[:40]} is out of range")
    return value


def _parse_constant(text: str) -> float:
    raise _BadNumber(f"{text} is not a JSON number")


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text (brackets inside strings ignored)."""
    depth = best = 0
    for ch in _STRINGS_OR_PLAIN.sub("", text):
        if ch in "[{":
            depth += 1
            best = max(best, depth)
        else:
            depth -= 1
    return best


def decode_text(data: bytes, where: str) -> str:
    """UTF-8 bytes as text; one AdvscaleError naming ``where`` (and the byte) when invalid."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AdvscaleError(f"{where}: not UTF-8 text (byte {e.start + 1}: {e.reason})") from None


def loads_bounded(text: str, where: str) -> Any:
    """Decode untrusted JSON text; one AdvscaleError naming ``where`` for anything wrong."""
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text) > MAX_DEPTH:
        raise AdvscaleError(f"{where}: not valid JSON (nested deeper than {MAX_DEPTH} levels)")
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_parse_constant)
    except json.JSONDecodeError as e:
        raise AdvscaleError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    except _BadNumber as e:
        raise AdvscaleError(f"{where}: not valid JSON ({e})") from None
    except (RecursionError, ValueError) as e:  # defensive: nothing else escapes
        raise AdvscaleError(f"{where}: not valid JSON ({type(e).__name__})") from None

Parser = Callable[[str, str], Any]
"""``parse(line, where)`` → a value, raising AdvscaleError (naming ``where``) when malformed."""


def parse_json_object(line: str, where: str) -> dict[str, Any]:
    """The default parser: one JSON object."""
    obj = loads_bounded(line, where)
    if not isinstance(obj, dict):
        raise AdvscaleError(f"{where}: a line must be a JSON object")
    return obj


@dataclass(frozen=True)
class LogContents:
    """The parsed complete lines of a log and the size of its torn tail (0 if none)."""

    items: list[Any]
    torn_bytes: int = 0


def _torn_tail(data: bytes, parse: Parser, where: str) -> int:
    """Bytes of an unterminated, unparsable last line (0 if the file ends cleanly)."""
    if not data or data.endswith(b"\n"):
        return 0
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    try:
        parse(tail.decode("utf-8"), where)
    except (AdvscaleError, ValueError, RecursionError, TypeError, KeyError):
        return len(tail)
    return 0


def read_log(path: str | os.PathLike[str], parse: Parser = parse_json_object,
             log: Callable[[str], None] | None = None) -> LogContents:
    """Parse every complete line of ``path`` (missing file: empty) under the torn-line policy."""
    path = Path(path)
    if path.is_dir():
        raise AdvscaleError(f"{path}: is a directory, not a JSONL file")
    if not path.is_file():
        return LogContents([])
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AdvscaleError(f"{path}: cannot read ({e.strerror or e})") from None
    torn = _torn_tail(data, parse, f"{path}:last")
    if torn:
        data = data[:-torn]
        if log is not None:
            log(f"{path}: skipped an unfinished last line ({torn} bytes, never acknowledged)")
    items = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AdvscaleError(f"{path}:{lineno}: not UTF-8 text") from None
        items.append(parse(line, f"{path}:{lineno}"))
    return LogContents(items, torn)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], mode: str = "r+b") -> Iterator[Any]:
    """Open ``path`` and hold an exclusive advisory lock on it while the body runs."""
    with open(path, mode) as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield f


def repair_open(f: Any, path: Path, parse: Parser,
                 log: Callable[[str], None] | None) -> int:
    """Cut a torn tail off the open (locked, binary read/write) file ``f``; bytes removed."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return 0
    f.seek(-1, os.SEEK_END)
    if f.read(1) == b"\n":
        return 0
    f.seek(0)
    data = f.read()
    torn = _torn_tail(data, parse, f"{path}:last")
    if torn:
        f.truncate(len(data) - torn)
    else:
        f.seek(0, os.SEEK_END)
        f.write(b"\n")
    f.flush()
    os.fsync(f.fileno())
    if torn and log is not None:
        log(f"{path}: removed an unfinished last line ({torn} bytes, never acknowledged)")
    return torn


def repair_tail(path: str | os.PathLike[str], parse: Parser = parse_json_object,
                log: Callable[[str], None] | None = None) -> int:
    """Cut a torn last line off ``path`` (or newline-terminate a parsable one); bytes removed.

    Done under the file's lock, so a concurrent appender never loses a line to it.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    try:
        with locked(path) as f:
            return repair_open(f, path, parse, log)
    except OSError as e:
        raise AdvscaleError(f"{path}: cannot repair the last line ({e.strerror or e})") from None


def append_line(path: str | os.PathLike[str], line: str, parse: Parser = parse_json_object,
                log: Callable[[str], None] | None = None) -> None:
    """Append one line (a newline is added) after repairing a torn tail; flushed and fsynced.

    Under the file's lock. On failure the file is cut back to its previous size and one
    AdvscaleError names the path and the cause (nothing half-written stays behind).
    """
    if "\n" in line:
        raise ValueError("a JSONL line cannot contain a newline")
    path = Path(path)
    data = (line + "\n").encode("utf-8")
    existed = os.path.lexists(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(path, "ab+") as f:
            repair_open(f, path, parse, log)
            size = f.seek(0, os.SEEK_END)
            try:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    f.truncate(size)
                raise
    except OSError as e:
        if not existed:  # a file made by this failed append (e.g. a full disk) is not kept
            with contextlib.suppress(OSError):
                if path.stat().st_size == 0:
                    path.unlink()
        raise AdvscaleError(f"{path}: cannot append ({e.strerror or e}); nothing was "
                            "written") from None
