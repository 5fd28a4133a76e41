"""``advscale fit``: fit a scaling law to JSONL records; print one ``fit`` record."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors
from advscale.core.fileio import atomic_write
from advscale.laws.fit import fit_record
from advscale.records import write_record


@handle_errors
def fit_cmd(
    files: list[str] = typer.Argument(
        None, help="JSONL records (train.eval, attack); '-' or nothing reads stdin."
    ),
    approach: str = typer.Option(..., "--approach", "-a",
                                 help="1, 2, 3, power-law or gbr (or the names approach1, "
                                 "approach2, approach3; docs/laws.md)."),
    target: str = typer.Option(
        None, help="adv_loss (default for 1-3), robust_acc, clean_acc, or aa_acc (default for "
        "power-law and gbr; needs attack records)."),
    filter_: list[str] = typer.Option(
        None, "--filter", help="Keep points where EXPR holds, e.g. \"params >= 1e6 and fid < 10\""
        " (repeatable; fields of the train.eval record, plus N, D, FID)."),
    n_boot: int = typer.Option(1000, "--bootstrap", "-B",
                               help="Bootstrap replicates over whole runs (0: none)."),
    seed: int = typer.Option(0, help="Bootstrap (and gbr split) seed."),
    points: str = typer.Option(
        None, help="Evaluation points per run: final (default), best or all (approach 1: all)."),
    exclusion: bool = typer.Option(
        None, "--paper-exclusion/--no-paper-exclusion",
        help="Drop runs with N < 100M, D > 10M and FID < 10 (appendix F.2; default on for "
        "approaches 2 and 3)."),
    attack: str = typer.Option("aa-standard", help="Attack whose records give aa_acc."),
    also: list[str] = typer.Option(
        None, "--also", help="power-law: also fit FIELD (e.g. cost_usd, energy_kwh) against "
        "FLOPs for the same best runs (repeatable)."),
    delta: float = typer.Option(1e-3, "--huber-delta",
                                help="Huber threshold on log residuals (approaches 2, 3)."),
    coarse: bool = typer.Option(False, "--coarse-grid",
                                help="Screen a subsample of the initialisation grid (faster)."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Write the fit record here (atomically) instead of stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Fit a scaling law (Bartoldson et al. approaches 1-3, Debenedetti et al. power law or GBR).

    Reads train.eval and attack records (files or stdin); joins each run's records by run_id.

    Prints one `fit` JSONL record: parameters, bootstrap intervals, R2/RMSE in and out of sample.

    Pipe it into `advscale predict --law -`. Methods and layouts: docs/laws.md, docs/formats.md.
    """
    options = {"approach": approach, "target": target, "points": points,
               "filters": filter_ or [], "exclusion": exclusion, "n_boot": n_boot, "seed": seed,
               "attack": attack, "also": also or [], "full_grid": not coarse, "delta": delta,
               "log": (lambda m: None) if quiet else err}
    if not quiet and n_boot > 0 and sys.stderr.isatty():
        with _progress_bar(n_boot) as progress:
            record = fit_record(files or ["-"], progress=progress, **options)
    else:
        record = fit_record(files or ["-"], **options)
    if output is None:
        write_record(record)
        return
    with atomic_write(output) as f:
        write_record(record, f)
    err(f"{output}: fit record written")


@contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int, int], None]]:
    """A transient bootstrap progress bar on stderr; yields the ``progress`` callback."""
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(transient=True, console=Console(stderr=True))
    task = bar.add_task("bootstrap", total=total)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield progress
