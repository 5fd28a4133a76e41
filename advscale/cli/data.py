"""``advscale data``: import real datasets into HDF5, summarise, mix and stitch files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors
from advscale.core.fileio import refuse_overwrite_of_inputs
from advscale.data.records import info_record
from advscale.errors import AdvscaleError
from advscale.records import write_record

app = typer.Typer(
    help="Image datasets in the advscale HDF5 layout (docs/formats.md).",
    no_args_is_help=True,
)


def _emit_summary(summary: dict, command: str) -> None:
    write_record(info_record(summary, command=command))


def _human(summary: dict) -> None:
    counts = summary.get("class_counts", [])
    err(
        f"{summary['path']}: {summary['n']:,} images {tuple(summary['image_shape'])}, "
        f"{len(counts)} classes, per class {min(counts) if counts else 0:,}"
        f"..{max(counts) if counts else 0:,}, pixels "
        f"{summary.get('pixel_min', '?')}..{summary.get('pixel_max', '?')}"
    )


@app.command("import")
@handle_errors
def import_cmd(
    src: str = typer.Argument(
        ...,
        help="cifar-10-python.tar.gz, an extracted cifar-10-batches-py/ folder, a DM-Improves-AT "
        ".npz, an image folder ROOT/<class>/*.png, or 'cifar10' to download.",
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output HDF5 file (written atomically)."),
    split: str = typer.Option("train", help="CIFAR-10 split: train or test."),
    fmt: str = typer.Option(
        None, "--format", help="Force the input format: cifar10-python, npz, folder."
    ),
    num_classes: int = typer.Option(10, help="Labels must lie in [0, num_classes)."),
) -> None:
    """Import a real dataset into the HDF5 layout; prints a data.info record on stdout."""
    from rich.progress import Progress

    from advscale.data.importers import import_dataset

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(f"importing {src}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = import_dataset(
            src, out, split=split, fmt=fmt, num_classes=num_classes, progress=progress
        )
    _human(summary)
    _emit_summary(summary, f"advscale data import {src} -o {out}")


@app.command("info")
@handle_errors
def info_cmd(
    files: list[Path] = typer.Argument(..., help="HDF5 image files."),
) -> None:
    """Summarise image files: rows, shape, class counts, pixel range, attributes (JSONL)."""
    from advscale.data.layout import summarize

    for f in files:
        summary = summarize(f)
        _human(summary)
        _emit_summary(summary, f"advscale data info {f}")


@app.command("mix")
@handle_errors
def mix_cmd(
    sources: list[str] = typer.Argument(
        ..., help="FILE.h5[:WEIGHT] items, e.g. real.h5:1 syn.h5:7"
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Mixture JSON file to write."),
) -> None:
    """Write a mixture file naming sources and sampling weights (nothing is copied)."""
    from advscale.core.fileio import atomic_write
    from advscale.data.reader import ImageMixture, parse_mixture

    spec = parse_mixture(sources)
    mixture = ImageMixture(spec.paths)  # validates every source
    doc = spec.to_json()
    for s, n in zip(doc["sources"], mixture.sizes, strict=True):
        s["n"] = n
        s["path"] = os.path.relpath(Path(s["path"]).resolve(), out.resolve().parent)
    with atomic_write(out) as f:
        json.dump(doc, f, indent=2)
    err(f"{out}: mixture of {len(spec.paths)} sources, {len(mixture):,} images")
    typer.echo(str(out))


@app.command("stitch")
@handle_errors
def stitch_cmd(
    files: list[Path] = typer.Argument(..., help="HDF5 image files to concatenate."),
    out: Path = typer.Option(..., "-o", "--out", help="Virtual HDF5 file to write."),
) -> None:
    """Concatenate files into one HDF5 virtual dataset (no pixels copied)."""
    from advscale.data.reader import stitch

    if out.resolve() in {f.resolve() for f in files}:
        raise AdvscaleError(f"{out}: the output must not be one of the inputs")
    refuse_overwrite_of_inputs([out], files)  # also a hard link to an input
    summary = stitch(files, out)
    _human(summary)
    _emit_summary(summary, "advscale data stitch")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
