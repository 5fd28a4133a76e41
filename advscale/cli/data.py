"""``advscale data``: import real datasets into HDF5, summarise, mix and stitch files."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors
from advscale.cli.help import App
from advscale.core.outputs import check_output
from advscale.data.records import info_record
from advscale.errors import AdvscaleError
from advscale.records import write_record

app = App(
    help="Image datasets in the advscale HDF5 layout (docs/formats.md).",
    no_args_is_help=True,
)


FORCE_HELP = "Overwrite OUT if it exists (otherwise an existing OUT is refused)."


def _emit_summary(summary: dict, argv: list[str]) -> None:
    """The data.info record; its provenance command rebuilds the same file."""
    write_record(info_record(summary, command=shlex.join(["advscale", "data", *argv])))


def refuse_existing(out: Path, force: bool, inputs: list[str | Path] = ()) -> None:
    """An existing output is only replaced with ``--force``; one of the inputs never is."""
    check_output(out, inputs, force=force)


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
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Import a real dataset into the HDF5 layout; prints a data.info record on stdout."""
    from rich.progress import Progress

    from advscale.data.importers import import_dataset

    refuse_existing(out, force, [src])

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(f"importing {src}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = import_dataset(
            src, out, split=split, fmt=fmt, num_classes=num_classes, labels=labels,
            progress=progress
        )
    _human(summary)
    argv = ["import", src, "--split", split, "-o", str(out), "--num-classes", str(num_classes)]
    argv += ["--labels", labels] if labels != "fine" else []
    _emit_summary(summary, argv + (["--format", fmt] if fmt else []) + ["--force"] * force)


@app.command("info")
@handle_errors
def info_cmd(
    files: list[Path] = typer.Argument(..., help="HDF5 image files."),
) -> None:
    """Summarise image files: rows, shape, class counts, pixel range, attributes (JSONL).

    Adversarial-image files (`attack --save-adv`) are summarised by their clean images."""
    from advscale.attacks.advfile import adv_file_summary, is_adv_file
    from advscale.data.layout import summarize

    for f in files:
        summary = adv_file_summary(f) if is_adv_file(f) else summarize(f)
        _human(summary)
        _emit_summary(summary, ["info", str(f)])


@app.command("mix")
@handle_errors
def mix_cmd(
    sources: list[str] = typer.Argument(
        ..., help="FILE.h5[:WEIGHT] items, e.g. real.h5:1 syn.h5:7"
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Mixture JSON file to write."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Write a mixture file naming sources and sampling weights (nothing is copied); prints a
    data.info record of the mixture."""
    from advscale.core.fileio import atomic_write
    from advscale.data.reader import ImageMixture, parse_mixture

    spec = parse_mixture(sources)
    refuse_existing(out, force, list(spec.paths))
    mixture = ImageMixture(spec.paths)  # validates every source
    mixture.check_labels()
    doc = spec.to_json()
    for s, n in zip(doc["sources"], mixture.sizes, strict=True):
        s["n"] = n
        s["path"] = os.path.relpath(Path(s["path"]).resolve(), out.resolve().parent)
    with atomic_write(out) as f:
        json.dump(doc, f, indent=2)
    err(f"{out}: mixture of {len(spec.paths)} sources, {len(mixture):,} images")
    summary = {"path": str(out), "n": len(mixture), "attrs": doc}
    _emit_summary(summary, ["mix", *sources, "-o", str(out), *["--force"] * force])


@app.command("stitch")
@handle_errors
def stitch_cmd(
    files: list[Path] = typer.Argument(..., help="HDF5 image files to concatenate."),
    out: Path = typer.Option(..., "-o", "--out", help="Virtual HDF5 file to write."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Concatenate files into one HDF5 virtual dataset (no pixels copied)."""
    from advscale.data.reader import stitch

    if out.resolve() in {f.resolve() for f in files}:
        raise AdvscaleError(f"{out}: the output must not be one of the inputs")
    refuse_existing(out, force, list(files))  # also a hard link to an input
    summary = stitch(files, out)
    _human(summary)
    _emit_summary(summary, ["stitch", *map(str, files), "-o", str(out), *["--force"] * force])


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
