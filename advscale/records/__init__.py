"""JSONL records: one JSON object a line, with a kind, a schema version and provenance.

The layout is the contract in ``docs/formats.md``. In short, every record is::

    {"kind": "train.eval", "schema": 1,
     "provenance": {"advscale_version": ..., "command": ..., "config": {...}, "seed": 0,
                    "time_utc": "2026-11-22T01:02:03Z", "host": "..."},
     ...payload fields, units in their names (``_flops``, ``_s``, ``_kwh``) or documented...}

Readers ignore fields they do not know and reject malformed lines with the file and line number.
Every reader decodes through :func:`advscale.core.jsonl.loads_bounded`: invalid UTF-8, nesting
deeper than 64 levels, integers over 64 digits and non-finite numbers (``NaN``, ``1e400``) are
one RecordError naming ``file:line``, never a traceback.
Each kind's fields are in :mod:`advscale.records.schemas` (``SCHEMAS``, ``validate``); writers
check records against them when ``ADVSCALE_STRICT_RECORDS=1`` (the test suite sets it).
:mod:`advscale.records.runs` joins records into training runs for ``fit`` and ``report``.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from advscale.core.jsonl import append_line, loads_bounded
from advscale.core.jsonl import read_log as _read_log
from advscale.errors import AdvscaleError
from advscale.records.schemas import KINDS, SCHEMAS, Field, RecordError, Schema, validate
from advscale.version import __version__

SCHEMA_VERSION = 4
"""The JSONL schema version written by this advscale (see docs/formats.md). 2: ``pgd-cw`` (the
``train.eval`` evaluation and ``attack --attack pgd-cw``) maximises the clamped CW loss, so
``adv_loss`` and ``eval_attack``/``attack`` ``pgd-cw`` mean that; in 1 they meant the unclamped
margin, now ``pgd-cw-margin``. 3 adds fields to ``fit`` (gbr ``predictions`` and
``importance_spread``, ``backtest``, ``paper_units``); nothing changes meaning. 4: ``train.eval``,
``attack`` and ``attack.chunk`` records carry ``norm`` (``linf`` | ``l2``; absent in older
records: ``linf``) and ``eps`` is that norm's radius. Readers accept 1 to 4."""

STRICT_ENV = "ADVSCALE_STRICT_RECORDS"
"""Set to ``1`` to make :func:`make_record` validate every record against its schema."""

__all__ = [
    "KINDS", "SCHEMAS", "SCHEMA_VERSION", "STRICT_ENV", "Field", "RecordError", "Schema",
    "append_record", "decode_line", "dumps", "iter_binary_lines", "iter_lines", "loads_all",
    "make_record", "open_records_file", "parse_line", "provenance", "read_log", "read_records",
    "strict", "utc_now", "validate", "write_record",
]


def strict() -> bool:
    """True when ``ADVSCALE_STRICT_RECORDS=1``: writers validate what they make."""
    return os.environ.get(STRICT_ENV) == "1"


def utc_now() -> str:
    """The current UTC time as ISO-8601 with a ``Z`` suffix, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z"
    )


def provenance(
    command: str | None = None,
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Who made a record: advscale version, command line, config, seed, UTC time and host."""
    if command is None:
        command = " ".join(["advscale", *sys.argv[1:]]) if sys.argv else "advscale"
    return {
        "advscale_version": __version__,
        "command": command,
        "config": _jsonable(dict(config or {})),
        "seed": seed,
        "time_utc": utc_now(),
        "host": socket.gethostname(),
    }


def make_record(
    kind: str,
    payload: Mapping[str, Any],
    *,
    command: str | None = None,
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
    prov: Mapping[str, Any] | None = None,
    check: bool | None = None,
) -> dict[str, Any]:
    """Build a record of ``kind`` with provenance (given, or made now) and the payload fields.

    ``check``: validate against ``SCHEMAS[kind]`` (RecordError when it does not fit); by
    default only in strict mode (``ADVSCALE_STRICT_RECORDS=1``), so production stays as fast
    as before. ``check=False`` is for hand-made partial records (test fixtures of records from
    other tools), never for what advscale itself writes.
    """
    rec: dict[str, Any] = {
        "kind": kind,
        "schema": SCHEMA_VERSION,
        "provenance": dict(prov) if prov is not None else provenance(command, config, seed),
    }
    for key in payload:
        if key in rec:
            raise ValueError(f"payload field {key!r} collides with a record header field")
    rec.update(_jsonable(dict(payload)))
    if check or (check is None and strict()):
        validate(rec)
    return rec


def dumps(record: Mapping[str, Any]) -> str:
    """One record as one line of strict JSON (NaN and infinities become null)."""
    return json.dumps(_jsonable(record), allow_nan=False, separators=(",", ":"))


def write_record(record: Mapping[str, Any], stream: IO[str] | None = None) -> None:
    """Write one record as a line to ``stream`` (stdout by default) and flush."""
    stream = sys.stdout if stream is None else stream
    stream.write(dumps(record) + "\n")
    stream.flush()


def append_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one record to a JSONL file, flushed and fsynced (append-only, crash-safe).

    A torn last line left by an earlier crash is cut off first (see :mod:`advscale.core.jsonl`).
    """
    append_line(path, dumps(record), parse_line)


def read_log(path: str | os.PathLike[str], log: Callable[[str], None] | None = None
             ) -> list[dict[str, Any]]:
    """The records of an append-only JSONL file under the one torn-last-line policy."""
    return _read_log(path, parse_line, log).items


def parse_line(line: str, where: str = "<record>") -> dict[str, Any]:
    """Parse one JSONL line into a record dict, or raise RecordError naming ``where``."""
    try:
        obj = loads_bounded(line, where)
    except AdvscaleError as e:
        raise RecordError(str(e)) from None
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: a record must be a JSON object, got {type(obj).__name__}")
    if not isinstance(obj.get("kind"), str):
        raise RecordError(f"{where}: record has no 'kind' field")
    schema = obj.get("schema", SCHEMA_VERSION)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise RecordError(
            f"{where}: schema {schema!r} is newer than this advscale understands "
            f"({SCHEMA_VERSION}); upgrade advscale"
        )
    return obj


def iter_lines(stream: IO[str], name: str) -> Iterator[dict[str, Any]]:
    """Records from an open text stream; blank lines are skipped.

    A stream with an underlying binary buffer (a file, stdin) is decoded line by line, so
    invalid UTF-8 is a RecordError naming the line.
    """
    buffer = getattr(stream, "buffer", None)
    if buffer is not None and getattr(stream, "encoding", None):
        yield from iter_binary_lines(buffer, name)
        return
    try:
        for lineno, line in enumerate(stream, start=1):
            if line.strip():
                yield parse_line(line, f"{name}:{lineno}")
    except UnicodeDecodeError as e:
        raise RecordError(f"{name}: not UTF-8 text ({e.reason})") from None


def decode_line(raw: bytes, where: str) -> str:
    """One line's bytes as text; RecordError naming ``where`` when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(f"{where}: not UTF-8 text (byte {e.start + 1}: {e.reason})") from None


def iter_binary_lines(stream: IO[bytes], name: str) -> Iterator[dict[str, Any]]:
    """Records from an open binary stream (``file:line`` in every error)."""
    for lineno, raw in enumerate(stream, start=1):
        if raw.strip():
            where = f"{name}:{lineno}"
            yield parse_line(decode_line(raw, where), where)


def read_records(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = "-",
    kinds: Iterable[str] | None = None,
    stdin: IO[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield records from JSONL files (``-`` is stdin), optionally only those of ``kinds``.

    Raises RecordError with ``file:line`` for a malformed line, and AdvscaleError for a missing
    file.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    wanted = set(kinds) if kinds is not None else None
    for src in sources:
        src = str(src)
        if src == "-":
            stream = stdin if stdin is not None else sys.stdin
            records = iter_lines(stream, "<stdin>")
            yield from (r for r in records if wanted is None or r["kind"] in wanted)
            continue
        with open_records_file(src) as f:
            for r in iter_binary_lines(f, src):
                if wanted is None or r["kind"] in wanted:
                    yield r


def open_records_file(src: str | os.PathLike[str]) -> IO[bytes]:
    """Open a JSONL file for binary reading; one AdvscaleError when missing or unreadable."""
    path = Path(src)
    if path.is_dir():
        raise AdvscaleError(f"{src}: is a directory, not a records file")
    if not path.is_file():
        raise AdvscaleError(f"{src}: no such records file")
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as e:
        raise AdvscaleError(f"{src}: cannot read ({e.strerror or e})") from None


def loads_all(text: str, name: str = "<string>") -> list[dict[str, Any]]:
    """Parse every record in a JSONL string (handy in tests and notebooks)."""
    return list(iter_lines(io.StringIO(text), name))


def _jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars, paths, tuples and non-finite floats to plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return _jsonable(item())
        except (ValueError, TypeError):
            pass
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return _jsonable(tolist())
    return str(obj)
