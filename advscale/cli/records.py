"""``advscale records``: results tables in (``import``), one row per run out (``table``),
leaderboard cards out (``export``)."""

from __future__ import annotations

from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors, log_to_stderr
from advscale.cli.help import App
from advscale.core.fileio import atomic_write
from advscale.core.outputs import check_output
from advscale.errors import AdvscaleError
from advscale.records import write_record
from advscale.records.rows import runs_of, table_rows, write_rows
from advscale.records.tables import BUILTIN_MAPS, import_table

app = App(help="Results tables → records (import) and records → a runs table (table).",
                  no_args_is_help=True)


@app.command("import")
@handle_errors
def import_cmd(
    table: str = typer.Argument(..., help="CSV, TSV, Parquet or JSON-lines table ('-': CSV on "
                                "stdin)."),
    map_: str = typer.Option("timm-adv-training", "--map", "-m",
                             help=f"Built-in map ({', '.join(BUILTIN_MAPS)}) or a MAP.toml "
                             "(docs/records.md)."),
    output: str = typer.Option("-", "--output", "-o",
                               help="Write the records here (atomically); '-' = stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
) -> None:
    """Turn each row of a results table into train.eval, attack and energy records.

    Units are converted as the map says; ambiguous columns (percent vs fraction, FLOPs units)
    are refused with the fix. Every record names its table row in its provenance.
    """
    check_output(output, [table, map_], force=force)
    records = import_table(table, map_)
    runs = sum(1 for r in records if r["kind"] == "train.eval")
    if output == "-":
        for rec in records:
            write_record(rec)
    else:
        with atomic_write(Path(output)) as f:
            for rec in records:
                write_record(rec, f)
    err(f"{table}: {runs} rows → {len(records)} records (map {map_})")


@app.command("table")
@handle_errors
def table_cmd(
    records: list[str] = typer.Argument(None, help="JSONL records ('-' or nothing: stdin)."),
    output: str = typer.Option("-", "--output", "-o",
                               help="runs.csv, runs.tsv or runs.jsonl; '-' = CSV on stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Say what was read (records, runs, records joined to none)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notes on stderr."),
) -> None:
    """One row per run: model, N, recipe, D, FLOPs, threat model, accuracies per attack,
    energy, source. An empty table says why on stderr."""
    log_to_stderr(verbose, quiet)
    check_output(output, records or [], force=force)
    table = runs_of(records or ["-"])
    rows = table_rows(table)
    write_rows(rows, output)
    why = table.empty_reason()
    if why is not None and not quiet:
        err(f"advscale records table: no rows: {why}")
    elif output != "-" and not quiet:
        err(f"{output}: {len(rows)} runs")


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
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --output."),
) -> None:
    """Attack records → RobustBench model_info cards (clean_acc, autoattack_acc, eps,
    architecture, images, the attack's settings); docs/models.md."""
    import json

    from advscale.records import read_records
    from advscale.records.export import FORMATS, robustbench_cards

    if fmt not in FORMATS:
        raise AdvscaleError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if output != "-":
        check_output(output, records or [], force=force)
    cards = robustbench_cards(read_records(records or ["-"], kinds=["attack"]), architecture,
                              forward_passes)
    if output == "-":
        for c in cards:
            typer.echo(json.dumps(c, sort_keys=True))
        return
    if len(cards) != 1:
        raise AdvscaleError(f"{len(cards)} checkpoints in the records; --output takes one card "
                            "(use stdout for several)")
    with atomic_write(Path(output)) as f:
        f.write(json.dumps(cards[0], indent=2, sort_keys=True) + "\n")
    err(f"{output}: RobustBench card ({cards[0]['architecture']}, clean "
        f"{cards[0]['clean_acc']}%, AutoAttack {cards[0]['autoattack_acc']}%)")
