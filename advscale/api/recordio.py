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
    * ``tables("export", sources="-", fmt="robustbench", architecture=None, forward_passes=1,
      output=None)``: attack records as RobustBench ``model_info`` cards (one JSON file with
      ``output``, which then takes exactly one checkpoint).
    """
    actions: dict[str, Callable[..., Any]] = {"import": import_records, "table": runs_table,
                                              "export": export_cards}
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
    from advscale.records.rows import runs_of, table_rows, write_rows

    srcs = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    check_output(output, srcs, force=force)
    table = runs_of(sources)
    rows = table_rows(table)
    if output is not None:
        write_rows(rows, output)
    why = table.empty_reason()
    if why is not None:
        log.info(f"no rows: {why}")
    elif output is not None and os.fspath(output) != "-":
        log.info(f"{output}: {len(rows)} runs")
    return rows


def export_cards(sources: PathLike | Sequence[PathLike] = "-", fmt: str = "robustbench",
                 architecture: str | None = None, forward_passes: int = 1,
                 output: PathLike | None = None, force: bool = False) -> list[dict[str, Any]]:
    """``tables("export", ...)``: see :func:`tables`."""
    import json

    from advscale.core.fileio import atomic_write
    from advscale.records import read_records as read
    from advscale.records.export import FORMATS, robustbench_cards

    if fmt not in FORMATS:
        raise AdvscaleError(f"format {fmt!r}: choose from {', '.join(FORMATS)}", field="format")
    srcs = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    check_output(output, srcs, force=force)
    cards = robustbench_cards(read(srcs, kinds=["attack"]), architecture, forward_passes)
    if output is not None and os.fspath(output) != "-":
        if len(cards) != 1:
            raise AdvscaleError(f"{len(cards)} checkpoints in the records; output takes one "
                                "card (use stdout for several)", field="output")
        with atomic_write(output) as f:
            f.write(json.dumps(cards[0], indent=2, sort_keys=True) + "\n")
        log.info(f"{output}: RobustBench card ({cards[0]['architecture']}, clean "
                 f"{cards[0]['clean_acc']}%, AutoAttack {cards[0]['autoattack_acc']}%)")
    return cards


def builtin_maps() -> tuple[str, ...]:
    """The names of the built-in results-table maps."""
    from advscale.records.tables import builtin_maps as discovered

    return tuple(discovered())
