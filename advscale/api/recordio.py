"""``advscale.records`` and ``advscale.read_records``: JSONL records in and out (torch-free)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from advscale.errors import AdvscaleError

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

__all__ = ["builtin_maps", "check_output", "read_records", "save_records", "tables"]


def check_output(output: PathLike | None, inputs: Sequence[PathLike | None] = (), *,
                 force: bool = False) -> None:
    """Refuse ``output`` when it is one of ``inputs`` or exists without ``force`` (``None``
    and ``-``, stdout, pass): the one output rule of every writing command."""
    from advscale.core.outputs import check_output as check

    check(output, inputs, force=force)


def read_records(sources: PathLike | Sequence[PathLike] = "-",
                 kinds: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """Records from JSONL files or globs (``-`` is stdin), optionally only ``kinds``."""
    from advscale.records import read_records as read
    from advscale.records.runs import expand_sources

    return read(expand_sources(sources), kinds=kinds)


def save_records(records: Mapping[str, Any] | Iterable[Mapping[str, Any]],
                 path: PathLike) -> None:
    """Write one record or several as a JSONL file, atomically (all or nothing)."""
    from advscale.core.fileio import atomic_write
    from advscale.records import write_record

    items = [records] if isinstance(records, Mapping) else list(records)
    with atomic_write(path) as f:
        for rec in items:
            write_record(rec, f)


def tables(action: str, *args: Any, **options: Any) -> Any:
    """One ``records`` action.

    * ``tables("import", table, map="timm-adv-training", output=None)``: each row of a results
      table (CSV, TSV, Parquet, JSON lines) as ``train.eval``, ``attack`` and ``energy`` records
      through a built-in map or a ``MAP.toml`` (docs/records.md); written to ``output`` when
      given, and returned.
    * ``tables("table", sources="-", output=None)``: one row per run (model, N, recipe, D,
      FLOPs, accuracies per attack, energy, source) as dicts; written to ``output`` (``.csv``,
      ``.tsv``, ``.jsonl``; ``-`` is CSV on stdout) when given.
    """
    actions: dict[str, Callable[..., Any]] = {"import": import_records, "table": runs_table}
    if action not in actions:
        raise AdvscaleError(f"tables: unknown action {action!r}; choose from "
                            f"{', '.join(actions)}", field="action")
    return actions[action](*args, **options)


def import_records(table: str, map: str = "timm-adv-training",  # noqa: A002
                   output: PathLike | None = None, force: bool = False) -> list[dict[str, Any]]:
    """``tables("import", ...)``: see :func:`tables`."""
    from advscale.records.tables import import_table

    check_output(output, [table, map], force=force)
    recs = import_table(table, map)
    if output is not None:
        save_records(recs, output)
    runs = sum(1 for r in recs if r["kind"] == "train.eval")
    log.info(f"{table}: {runs} rows → {len(recs)} records (map {map})")
    return recs


def runs_table(sources: PathLike | Sequence[PathLike] = "-",
               output: PathLike | None = None, force: bool = False) -> list[dict[str, Any]]:
    """``tables("table", ...)``: see :func:`tables`."""
    from advscale.records.rows import run_rows, write_rows

    srcs = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    check_output(output, srcs, force=force)
    rows = run_rows(sources)
    if output is not None:
        write_rows(rows, output)
        if os.fspath(output) != "-":
            log.info(f"{output}: {len(rows)} runs")
    return rows


def builtin_maps() -> tuple[str, ...]:
    """The names of the built-in results-table maps."""
    from advscale.records.tables import builtin_maps as discovered

    return tuple(discovered())
