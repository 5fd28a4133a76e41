"""``advscale report``: figures and a self-contained HTML page from records and laws."""

from __future__ import annotations

from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors
from advscale.laws.published import builtin_runs, load_runs
from advscale.records import write_record
from advscale.report.command import held_out_note, report_record


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
    force: bool = typer.Option(False, "--force", help="Replace an earlier report in OUT."),
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
    table = (builtin_runs() if published else []) + (load_runs(runs) if runs else [])
    rec = report_record(records, out, laws=law, held_out=held_out, title=title,
                        published=table, force=force)
    for e in rec["held_out"]:
        err(held_out_note(e))
    err(f"{rec['report']}: {len(rec['figures'])} figures, {rec['runs']} runs")
    write_record(rec)
