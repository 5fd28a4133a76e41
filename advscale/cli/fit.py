"""``advscale fit``: fit a scaling law to JSONL records; print one ``fit`` record."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors, log_to_stderr
from advscale.core.fileio import atomic_write
from advscale.core.outputs import check_output
from advscale.laws.backtest import backtest_record, summary_line
from advscale.laws.fit import fit_record
from advscale.records import write_record

_P = {
    "verbose": typer.Option(False, "--verbose", "-v",
                            help="Say what was read (records, runs, records joined to none)."),
    "protocol": typer.Option(
        "advscale", "--protocol",
        help="advscale or bartoldson2024: every choice of the authors' notebook at "
        "once (best past-half checkpoint, filters first, nominal-size exclusion, stage 2 "
        "anchored at the base FID on named datasets, no joint polish, FLOPs floor, the code's "
        "grids; docs/laws.md). The options below change one choice each."),
    "min_train_fraction": typer.Option(
        None, "--min-train-fraction",
        help="Only evaluations at least this far into training (bartoldson2024: 0.5)."),
    "filter_order": typer.Option(
        None, "--filter-order", help="after (filters drop chosen points) or before (they drop "
        "evaluations before each run's point is chosen; bartoldson2024)."),
    "exclusion_size": typer.Option(
        None, "--exclusion-size", help="What the exclusion rule's D is: samples (seen) or "
        "nominal (samples_target; bartoldson2024)."),
    "anchor": typer.Option(
        None, "--anchor", help="Approach 2 stage 2: fid0 (stage-1 B, E as FID-0 values) or "
        "base (anchored at the base dataset's FID, then rescaled; bartoldson2024)."),
    "joint_polish": typer.Option(
        None, "--joint-polish/--no-joint-polish",
        help="Approach 2: polish all 7 parameters jointly after the two stages (advscale)."),
    "base_dataset": typer.Option(
        None, "--base-dataset", help="Approach 2's stage-1 dataset by name (data_source, "
        "dataset, or data[].path stems; bartoldson2024: dg20)."),
    "stage2_dataset": typer.Option(
        None, "--stage2-dataset", help="Approach 2's stage-2 datasets by name (repeatable; "
        "bartoldson2024: vanilla7, vanilla10, vanilla20)."),
    "flops_floor": typer.Option(
        None, "--flops-floor", help="Approach 1: only evaluations above this many FLOPs "
        "(bartoldson2024: 1.9e17; 0: none)."),
    "envelope": typer.Option(
        None, "--envelope", help="Approach 1's envelope: advscale or bartoldson2024 (the "
        "authors' code: linear in FLOPs, finished runs compete)."),
    "accuracy_runs": typer.Option(
        None, "--accuracy-runs", help="Loss->accuracy map over the fitted runs (fitted) or "
        "the base dataset's runs (base; bartoldson2024)."),
    "grids": typer.Option(
        None, "--grids", help="Starting grids: appendix (appendix F's text) or code (the "
        "authors' code; bartoldson2024)."),
    "holdout": typer.Option(
        None, "--holdout",
        help="Backtest: fit on the runs where EXPR is false, predict those where it is true "
        "(e.g. 'train_flops > 1e19'); per-run errors and band coverage go in the record's "
        "backtest."),
    "optimizer": typer.Option(
        None, "--optimizer", help="Approaches 2 and 3: advscale (screened grid, tight polish: "
        "the objective's minimum; default) or notebook (the authors' L-BFGS-B with SciPy's "
        "defaults, finite differences, their parameterisation and grids: their constants; "
        "docs/fidelity.md)."),
    "bins": typer.Option(None, "--bins",
                         help="power-law: log-spaced bins of the x range.",
                         show_default="19"),
    "x": typer.Option(
        None, "--x", help="power-law: the field the law is of: train_flops, or a numeric "
        "field of the runs' records, e.g. cost_usd from joined energy records.",
        show_default="train_flops"),
}
"""The fitting-protocol options (:mod:`advscale.laws.protocol`; docs/laws.md) and the power
law's ``--bins``, ``--x``."""


@handle_errors
def fit_cmd(
    files: list[str] = typer.Argument(
        None, help="JSONL records (train.eval, attack); '-' or nothing reads stdin."
    ),
    approach: str = typer.Option(..., "--approach", "-a",
                                 help="1, 2, 3, power-law or gbr (or the names approach1, "
                                 "approach2, approach3; docs/laws.md)."),
    target: str = typer.Option(
        None, help="adv_loss, robust_acc, clean_acc, or aa_acc (needs attack records).",
        show_default="adv_loss for approaches 1-3, aa_acc for power-law and gbr"),
    filter_: list[str] = typer.Option(
        None, "--filter", help="Keep points where EXPR holds, e.g. \"params >= 1e6 and fid < 10\""
        " (repeatable; fields of the train.eval record, plus N, D, FID)."),
    n_boot: int = typer.Option(1000, "--bootstrap", "-B",
                               help="Bootstrap replicates over whole runs (0: none)."),
    seed: int = typer.Option(0, help="Bootstrap (and gbr split) seed."),
    points: str = typer.Option(
        None, help="Evaluation points per run: final, best or all.",
        show_default="final; all for approach 1"),
    exclusion: bool = typer.Option(
        None, "--paper-exclusion/--no-paper-exclusion",
        help="Drop runs with N < 100M, D > 10M and FID < 10 (appendix F.2).",
        show_default="on for approaches 2 and 3"),
    attack: str = typer.Option("aa-standard", help="Attack whose records give aa_acc."),
    also: list[str] = typer.Option(
        None, "--also", help="power-law: also fit FIELD (e.g. cost_usd, energy_kwh) against "
        "FLOPs for the same best runs (repeatable)."),
    bins: int = _P["bins"],
    x: str = _P["x"],
    delta: float = typer.Option(1e-3, "--huber-delta",
                                help="Huber threshold on log residuals (approaches 2, 3)."),
    coarse: bool = typer.Option(False, "--coarse-grid",
                                help="Screen a subsample of the initialisation grid (faster)."),
    protocol: str = _P["protocol"],
    min_train_fraction: float = _P["min_train_fraction"],
    filter_order: str = _P["filter_order"],
    exclusion_size: str = _P["exclusion_size"],
    anchor: str = _P["anchor"],
    joint_polish: bool = _P["joint_polish"],
    base_dataset: str = _P["base_dataset"],
    stage2_dataset: list[str] = _P["stage2_dataset"],
    flops_floor: float = _P["flops_floor"],
    envelope: str = _P["envelope"],
    accuracy_runs: str = _P["accuracy_runs"],
    grids: str = _P["grids"],
    holdout: str = _P["holdout"],
    optimizer: str = _P["optimizer"],
    output: Path = typer.Option(None, "--output", "-o",
                                help="Write the fit record here (atomically) instead of stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
    verbose: bool = _P["verbose"],
) -> None:
    """Fit a scaling law (Bartoldson et al. approaches 1-3, Debenedetti et al. power law or GBR).

    Reads train.eval and attack records (files or stdin); joins each run's records by run_id.

    Prints one `fit` JSONL record: parameters, bootstrap intervals, R2/RMSE in and out of sample.

    Pipe it into `advscale predict --law -`. Methods and layouts: docs/laws.md, docs/formats.md.
    """
    options = {"approach": approach, "target": target, "points": points,
               "filters": filter_ or [], "exclusion": exclusion, "n_boot": n_boot, "seed": seed,
               "attack": attack, "also": also or [], "full_grid": not coarse, "delta": delta,
               "protocol": protocol, "bins": bins, "x": x,
               "protocol_options": dict(
                   min_train_fraction=min_train_fraction, filter_order=filter_order,
                   exclusion_size=exclusion_size, anchor=anchor, joint_polish=joint_polish,
                   base_dataset=base_dataset, stage2_datasets=stage2_dataset or None,
                   flops_floor=flops_floor, envelope=envelope, accuracy_runs=accuracy_runs,
                   grids=grids, optimizer=optimizer),
               "log": (lambda m: None) if quiet else err}
    check_output(output, files or [], force=force)
    log_to_stderr(verbose, quiet)
    record = _fit(files or ["-"], options, holdout, show_progress=not quiet and n_boot > 0)
    _write(record, output, options["log"])


def _write(record: dict, output: Path | None, log) -> None:
    """The fit record on stdout, or atomically into ``output`` with a note (``log``)."""
    if output is None:
        write_record(record)
        return
    with atomic_write(output) as f:
        write_record(record, f)
    log(f"{output}: fit record written")  # nothing with -q


def _fit(files: list[str], options: dict, holdout: str | None, show_progress: bool) -> dict:
    """The fit record (with ``backtest`` when ``holdout`` is given), a progress bar on a tty."""
    fit_fn = partial(backtest_record, holdout=holdout) if holdout is not None else fit_record
    if show_progress and sys.stderr.isatty():
        with _progress_bar(options["n_boot"]) as progress:
            record = fit_fn(files, progress=progress, **options)
    else:
        record = fit_fn(files, **options)
    if holdout is not None and options["log"] is err:
        err(summary_line(record["backtest"]))
    return record


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
