"""``advscale report``: figures and a self-contained HTML page from records and laws."""

from __future__ import annotations

from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors


@handle_errors
def report(
    records: list[str] = typer.Argument(
        ..., help="JSONL files of train.eval, attack, energy and fit records ('-' = stdin)."
    ),
    law: list[str] = typer.Option(
        [], "--law", help="Fitted law (fit JSON/JSONL file or a preset name); repeatable."
    ),
    out: Path = typer.Option(Path("report"), "-o", "--out", help="Output folder."),
    held_out: list[str] = typer.Option(
        [], "--held-out", help="Run id left out of the fit: its prediction error is reported."
    ),
    title: str = typer.Option("advscale scaling study", help="Page title."),
) -> None:
    """Write PNG figures and report.html; print one `report` record (held-out errors) on stdout."""
    from advscale.laws.law import load_law_doc
    from advscale.records import make_record, read_records, write_record
    from advscale.report.page import build_report
    from advscale.report.scoring import held_out_errors

    recs = list(read_records(records))
    laws = [load_law_doc(spec) for spec in law]
    errors = held_out_errors(recs, laws, held_out)
    notes = [
        f"Held-out run {e['run_id']} ({e['model']}, D={e['samples_seen']:,}): actual "
        f"{e['target']} {e['actual']:.4f}, predicted {e['predicted']:.4f} "
        f"({100 * e['rel_error']:+.1f}%)"
        for e in errors
    ]
    summary = build_report(recs, out, laws=laws, title=title, notes=notes,
                           held_out=[(e["actual"], e["predicted"]) for e in errors])
    for note in notes:
        err(note)
    err(f"{summary['report']}: {len(summary['figures'])} figures, {summary['runs']} runs")
    write_record(make_record("report", {**summary, "held_out": errors},
                             config={"records": records, "laws": law, "out": str(out)}))
