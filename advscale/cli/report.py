"""``advscale report``: figures and a self-contained HTML page from records and laws.

A thin adapter over :func:`advscale.api.report`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from advscale import api
from advscale.cli.common import handle_errors
from advscale.cli.shared import common
from advscale.records import write_record


@handle_errors
def report(
    records: list[str] = typer.Argument(
        ..., help="JSONL files of train.eval, attack, energy and fit records ('-' = stdin)."
    ),
    law: list[str] = typer.Option(
        [], "--law", help="Fitted law (fit JSON/JSONL file or a preset name); repeatable. An "
        "Approach 3 law (and an Approach 2 law fitted across qualities) also draws the quality "
        "figures when the runs have two or more qualities."
    ),
    out: Path = typer.Option(Path("report"), "-o", "--out", help="Output folder (made by the "
                             "report; an earlier report there is replaced only with --force)."),
    force: bool = common("force"),
    acc_floor: float = typer.Option(
        api.ACC_FLOOR_PCT, "--acc-floor", min=0.0, max=100.0,
        help="Accuracy (percent) under which a run sits at the accuracy figure's axis floor, so "
        "the ~0% one-step runs do not take the log axis from the envelope."),
    held_out: list[str] = typer.Option(
        [], "--held-out", help="Run id left out of the fit: its prediction error is reported."
    ),
    title: str = typer.Option("advscale scaling study", help="Page title."),
    published: bool = typer.Option(
        False, "--published", help="Place the built-in published runs on the first Approach "
        "2/3 --law (Figures 6 and 7: N vs N*, compute overhead vs model size)."),
    runs: str = typer.Option(None, "--runs", help="Place your own runs too (JSONL or CSV: "
                             "name, params, samples_seen [, fid])."),
) -> None:
    """Write PNG figures and report.html; print one `report` record (held-out errors) on stdout."""
    write_record(api.report(records, out, laws=law, held_out=held_out, title=title,
                            published=published, runs=runs, force=force,
                            acc_floor=acc_floor))
