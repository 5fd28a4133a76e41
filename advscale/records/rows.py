"""Records → one row per run: the fields of a paper's table (``records table``, the report).

:func:`run_rows` / :func:`to_dataframe` give one row per run from records (:func:`runs_of` and
:func:`table_rows` in two steps, the table saying why it has no rows); :func:`write_rows`
writes them as CSV, TSV or JSON lines. Results tables *into* records are :mod:`.tables`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from advscale.core.fileio import atomic_write
from advscale.errors import AdvscaleError
from advscale.records.runs import Run, RunTable, Sources, Tagged, read_runs

RUN_COLUMNS = (
    "run_id", "model", "params", "activation", "loss", "beta", "pgd_steps", "ema_decay",
    "epochs", "synthetic", "dataset", "fid", "samples_seen", "train_flops", "norm", "eps",
    "eval_attack", "clean_acc", "robust_acc", "adv_loss",
)
"""The leading columns of :func:`run_rows` (then one ``<attack>`` accuracy column per attack,
then energy: ``energy_kwh``, ``cost_usd``, ``co2_kg``, ``energy_basis``, then ``source``)."""

ENERGY_COLUMNS = ("energy_kwh", "cost_usd", "co2_kg", "energy_basis")


def attack_column(attack: str) -> str:
    """The runs-table column of an attack's robust accuracy (``aa-standard`` → ``aa_acc``)."""
    return "aa_acc" if attack == "aa-standard" else f"{attack}_acc"


def run_rows(records: Sources | Iterable[dict[str, Any] | Tagged] = "-",
             stdin: IO[str] | None = None) -> list[dict[str, Any]]:
    """One dict per run (by model size, then run id): :data:`RUN_COLUMNS`, attacks, energy."""
    return table_rows(runs_of(records, stdin))


def runs_of(records: Sources | Iterable[dict[str, Any] | Tagged] = "-",
            stdin: IO[str] | None = None) -> RunTable:
    """The records → runs table of JSONL sources (``-`` = stdin) or of records."""
    if isinstance(records, str | os.PathLike):
        return read_runs(records, stdin=stdin)
    items = list(records)
    if all(isinstance(r, str | os.PathLike) for r in items):
        return read_runs(items, stdin=stdin)  # type: ignore[arg-type]
    return read_runs(records=items)  # type: ignore[arg-type]


def table_rows(table: RunTable) -> list[dict[str, Any]]:
    """One row per run of a runs table (empty: :meth:`RunTable.empty_reason` says why)."""
    runs = table.sorted_runs()
    attacks = sorted({str(t.rec.get("attack")) for r in runs for t in r.attacks})
    return [run_row(r, attacks) for r in runs]


def run_row(run: Run, attacks: Sequence[str]) -> dict[str, Any]:
    """One run's row: :data:`RUN_COLUMNS`, one accuracy per attack, energy, its source."""
    fin = run.final_eval()
    rec = fin.rec if fin is not None else {}
    row: dict[str, Any] = {k: rec.get(k) for k in RUN_COLUMNS}
    row["run_id"] = run.run_id
    given = rec.get("synthetic")
    row["synthetic"] = given if isinstance(given, bool) else _synthetic(rec)
    row["dataset"] = dataset_name(rec)
    row["norm"], row["eps"] = threat_model(rec, [t.rec for t in run.attacks])
    for a in attacks:
        row[attack_column(a)] = run.attack_acc(a)
    energy = run.energy[-1] if run.energy else {}
    row["energy_kwh"] = energy.get("facility_energy_kwh", energy.get("it_energy_kwh"))
    row["cost_usd"] = energy.get("cost_usd")
    row["co2_kg"] = energy.get("co2_kg")
    row["energy_basis"] = energy.get("basis")
    row["source"] = _source(fin)
    return row


def _synthetic(rec: dict[str, Any]) -> bool | None:
    data = rec.get("data")
    if not isinstance(data, list):
        return True if _number(rec.get("fid")) is not None else None
    return any(isinstance(d, dict) and (d.get("source") == "synthetic" or
                                        d.get("fid") is not None) for d in data) or (
        _number(rec.get("fid")) is not None)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def dataset_name(rec: dict[str, Any]) -> str | None:
    """The training data of a ``train.eval`` record: its ``data[]`` entries, each by file stem
    (``cifar10-train + gowal2021-ddpm-1m``), the ``source`` attribute where there is no path;
    ``dataset`` when the record carries one; None when neither is known."""
    if isinstance(rec.get("dataset"), str):
        return rec["dataset"]
    names = []
    for d in rec.get("data") or []:
        if not isinstance(d, dict):
            continue
        name = Path(str(d["path"])).stem if d.get("path") else d.get("source")
        if name and name not in names:
            names.append(str(name))
    return " + ".join(names) or None


def threat_model(rec: dict[str, Any], attacks: Sequence[dict[str, Any]] = ()
                 ) -> tuple[str | None, float | None]:
    """(norm, eps) of a run's evaluation: the last attack record's, else the ``train.eval``
    record's; ``Linf`` where a radius is known and no norm is named (advscale's attacks and the
    papers' are L-inf). ``eps`` is a fraction of the pixel range (8/255 = 0.0314)."""
    for src in (*reversed(attacks), rec):
        eps = _number(src.get("eps"))
        if eps is not None:
            return str(src.get("norm") or rec.get("norm") or "Linf"), eps
    norm = next((a.get("norm") for a in (*attacks, rec) if a.get("norm")), None)
    return (str(norm) if norm else None), None


def threat_text(norm: str | None, eps: float | None) -> str | None:
    """``Linf 8/255`` (a radius on the 1/255 grid in 255ths), else ``Linf 0.0314``; None when
    nothing is known."""
    if eps is None:
        return norm
    k = eps * 255
    radius = f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:.4g}"
    return f"{norm or 'Linf'} {radius}"


def _source(t: Tagged | None) -> str | None:
    if t is None:
        return None
    config = (t.rec.get("provenance") or {}).get("config") or {}
    if isinstance(config, dict) and "table" in config and "row" in config:
        return f"{config['table']}:row {config['row']}"
    return t.where


def to_dataframe(records: Sources | Iterable[dict[str, Any] | Tagged] = "-"):
    """The runs table (:func:`run_rows`) as a pandas DataFrame (pandas imported here)."""
    import pandas as pd

    rows = run_rows(records)
    columns = list(rows[0]) if rows else list(RUN_COLUMNS) + list(ENERGY_COLUMNS) + ["source"]
    return pd.DataFrame(rows, columns=columns)


def write_rows(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str],
               stream: IO[str] | None = None) -> None:
    """Write rows as CSV (``-`` = stdout, or ``.csv``), TSV (``.tsv``) or JSON lines."""
    text = str(out)
    ext = Path(text).suffix.lower()
    buf = io.StringIO()
    if ext in (".jsonl", ".ndjson"):
        for r in rows:
            buf.write(json.dumps(r, allow_nan=False, default=str) + "\n")
    elif ext in ("", ".csv", ".tsv", ".tab"):
        header = list(rows[0]) if rows else list(RUN_COLUMNS)
        w = csv.DictWriter(buf, fieldnames=header, delimiter="\t" if ext in (".tsv", ".tab")
                           else ",", lineterminator="\n")
        w.writeheader()
        w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    else:
        raise AdvscaleError(f"-o {text}: write .csv, .tsv or .jsonl (or '-' for CSV on stdout)")
    if text == "-":
        target = stream if stream is not None else sys.stdout
        target.write(buf.getvalue())
        target.flush()
        return
    with atomic_write(text) as f:
        f.write(buf.getvalue())
