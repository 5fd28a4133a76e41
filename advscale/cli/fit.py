"""``advscale fit``: fit a scaling law to JSONL records; print one ``fit`` record.

A thin adapter over :func:`advscale.api.fit`; the options are generated from
:class:`advscale.api.FitRequest`'s fields and each law approach's own options
(:func:`advscale.api.approach_option_classes`, one help panel per approach).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from advscale import api
from advscale.cli.common import handle_errors
from advscale.cli.logs import note
from advscale.cli.requests import request_command
from advscale.cli.shared import common
from advscale.records import write_record


@handle_errors
@request_command(api.FitRequest, *api.approach_option_classes())
def fit_cmd(
    files: list[str] = typer.Argument(
        None, help="JSONL records (train.eval, attack); '-' or nothing reads stdin."
    ),
    approach: str = typer.Option(..., "--approach", "-a",
                                 help=f"{', '.join(api.approach_choices())} (or the names "
                                 "approach1, approach2, approach3; docs/laws.md)."),
    output: Path = common("output"),
    quiet: bool = common("quiet"),
    force: bool = common("force"),
    *,
    given: dict[str, Any],
) -> None:
    """Fit a scaling law (Bartoldson et al. approaches 1-3, Debenedetti et al. power law or GBR).

    Reads train.eval and attack records (files or stdin); joins each run's records by run_id.

    Prints one `fit` JSONL record: parameters, bootstrap intervals, R2/RMSE in and out of sample.

    Pipe it into `advscale predict --law -`. Methods and layouts: docs/laws.md, docs/formats.md.
    """
    api.check_output(output, files or [], force=force)
    n_boot = given.get("n_boot", 1000)
    if not quiet and n_boot > 0 and sys.stderr.isatty():
        with _progress_bar(n_boot) as progress:
            record = api.fit(files or ["-"], approach=approach, progress=progress, **given)
    else:
        record = api.fit(files or ["-"], approach=approach, **given)
    if output is None:
        write_record(record)
        return
    api.save_records(record, output)
    note(f"{output}: fit record written")


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
