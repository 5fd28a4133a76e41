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
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advscale.errors import AdvscaleError

Parser = Callable[[str, str], Any]
"""``parse(line, where)`` → a value, raising AdvscaleError (naming ``where``) when malformed."""


def parse_json_object(line: str, where: str) -> dict[str, Any]:
    """The default parser: one JSON object."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise AdvscaleError(f"{where}: not valid JSON ({e})") from None
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
    except (AdvscaleError, UnicodeDecodeError, RecursionError, ValueError):
        return len(tail)
    return 0


def read_log(path: str | os.PathLike[str], parse: Parser = parse_json_object,
             log: Callable[[str], None] | None = None) -> LogContents:
    """Parse every complete line of ``path`` (missing file: empty) under the torn-line policy."""
    path = Path(path)
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


def repair_tail(path: str | os.PathLike[str], parse: Parser = parse_json_object,
                log: Callable[[str], None] | None = None) -> int:
    """Cut a torn last line off ``path`` (or newline-terminate a parsable one); bytes removed."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
    data = path.read_bytes()
    torn = _torn_tail(data, parse, f"{path}:last")
    with open(path, "r+b") as f:
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


def append_line(path: str | os.PathLike[str], line: str, parse: Parser = parse_json_object,
                log: Callable[[str], None] | None = None) -> None:
    """Append one line (a newline is added) after repairing a torn tail; flushed and fsynced."""
    if "\n" in line:
        raise ValueError("a JSONL line cannot contain a newline")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_tail(path, parse, log)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
