"""``advscale data``: import real datasets into HDF5, summarise, mix and stitch files.

A thin adapter over :func:`advscale.api.data`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from advscale import api
from advscale.cli.common import handle_errors
from advscale.cli.help import App
from advscale.cli.shared import common
from advscale.records import write_record

app = App(
    help="Image datasets in the advscale HDF5 layout (docs/formats.md).",
    no_args_is_help=True,
)


def _emit(records: list[dict]) -> None:
    for rec in records:
        write_record(rec)


@app.command("import")
@handle_errors
def import_cmd(
    src: str = typer.Argument(
        ...,
        help="cifar-10-python.tar.gz or cifar-100-python.tar.gz (or the extracted folder), an "
        "SVHN train/test/extra_32x32.mat, a DM-Improves-AT .npz, an image folder "
        "ROOT/<class>/*.png of square images, or 'cifar10' to download.",
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output HDF5 file (written atomically)."),
    split: str = typer.Option(
        "train", help="CIFAR-10/100 split: train or test; SVHN (a folder of .mat files): train, "
        "test or extra."),
    labels: str = typer.Option("fine", help="CIFAR-100 labels: fine (100 classes) or coarse "
                               "(20 superclasses)."),
    fmt: str = typer.Option(
        None, "--format", help="Force the input format: cifar10-python, cifar100-python, "
        "svhn-mat, npz, folder."
    ),
    num_classes: int = typer.Option(10, help="Labels must lie in [0, num_classes)."),
    force: bool = common("force"),
) -> None:
    """Import a real dataset into the HDF5 layout; prints a data.info record on stdout."""
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"importing {src}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        _emit(api.dataset("import", src, out, split=split, fmt=fmt, num_classes=num_classes,
                       labels=labels, force=force, progress=progress))


@app.command("info")
@handle_errors
def info_cmd(
    files: list[Path] = typer.Argument(..., help="HDF5 image files."),
) -> None:
    """Summarise image files: rows, shape, class counts, pixel range, attributes (JSONL).

    Adversarial-image files (`attack --save-adv`) are summarised by their clean images."""
    _emit(api.dataset("info", *files))


@app.command("mix")
@handle_errors
def mix_cmd(
    sources: list[str] = typer.Argument(
        ..., help="FILE.h5[:WEIGHT] items, e.g. real.h5:1 syn.h5:7"
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Mixture JSON file to write."),
    force: bool = common("force"),
) -> None:
    """Write a mixture file naming sources and sampling weights (nothing is copied); prints a
    data.info record of the mixture."""
    _emit(api.dataset("mix", sources, out, force=force))


@app.command("stitch")
@handle_errors
def stitch_cmd(
    files: list[Path] = typer.Argument(..., help="HDF5 image files to concatenate."),
    out: Path = typer.Option(..., "-o", "--out", help="Virtual HDF5 file to write."),
    force: bool = common("force"),
) -> None:
    """Concatenate files into one HDF5 virtual dataset (no pixels copied)."""
    _emit(api.dataset("stitch", files, out, force=force))
