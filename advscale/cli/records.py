"""``advscale records``: results tables in (``import``), one row per run out (``table``),
leaderboard cards out (``export``).

A thin adapter over :func:`advscale.api.records`.
"""

from __future__ import annotations

import typer

from advscale import api
from advscale.cli.common import handle_errors
from advscale.cli.help import App
from advscale.cli.shared import common
from advscale.records import write_record

app = App(help="Results tables → records (import) and records → a runs table (table).",
                  no_args_is_help=True)


@app.command("import")
@handle_errors
def import_cmd(
    table: str = typer.Argument(..., help="CSV, TSV, Parquet or JSON-lines table ('-': CSV on "
                                "stdin)."),
    map_: str = typer.Option("timm-adv-training", "--map", "-m",
                             help=f"Built-in map ({', '.join(api.builtin_maps())}) or a MAP.toml "
                             "(docs/records.md)."),
    output: str = typer.Option("-", "--output", "-o",
                               help="Write the records here (atomically); '-' = stdout."),
    force: bool = common("force"),
) -> None:
    """Turn each row of a results table into train.eval, attack and energy records.

    Units are converted as the map says; ambiguous columns (percent vs fraction, FLOPs units)
    are refused with the fix. Every record names its table row in its provenance.
    """
    records = api.tables("import", table, map_, output=None if output == "-" else output,
                         force=force)
    if output == "-":
        for rec in records:
            write_record(rec)


@app.command("table")
@handle_errors
def table_cmd(
    records: list[str] = typer.Argument(None, help="JSONL records ('-' or nothing: stdin)."),
    output: str = typer.Option("-", "--output", "-o",
                               help="runs.csv, runs.tsv or runs.jsonl; '-' = CSV on stdout."),
    force: bool = common("force"),
) -> None:
    """One row per run: model, N, recipe, D, FLOPs, threat model, accuracies per attack,
    energy, source. An empty table says why on stderr."""
    api.tables("table", records or ["-"], output=output, force=force)


@app.command("export")
@handle_errors
def export_cmd(
    records: list[str] = typer.Argument(None, help="JSONL records ('-' or nothing: stdin)."),
    fmt: str = typer.Option("robustbench", "--format", help="robustbench: RobustBench's "
                            "model_info JSON fields."),
    architecture: str = typer.Option(None, "--architecture", help="Architecture text for the "
                                     "card, e.g. 'RaWideResNet-70-16'.",
                                     show_default="from the records' model"),
    forward_passes: int = typer.Option(1, "--number-forward-passes",
                                       help="RobustBench's number_forward_passes."),
    output: str = typer.Option("-", "--output", "-o", help="Write one card as JSON here "
                               "(atomically); '-' = one card per line on stdout."),
    force: bool = common("force"),
) -> None:
    """Attack records → RobustBench model_info cards (clean_acc, autoattack_acc, eps,
    architecture, images, the attack's settings); docs/models.md."""
    import json

    cards = api.tables("export", records or ["-"], fmt=fmt, architecture=architecture,
                       forward_passes=forward_passes,
                       output=None if output == "-" else output, force=force)
    if output == "-":
        for c in cards:
            typer.echo(json.dumps(c, sort_keys=True))
