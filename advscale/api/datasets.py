"""``advscale.data``: image datasets in the advscale HDF5 layout (torch-free at import)."""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from advscale.errors import AdvscaleError

PathLike = str | os.PathLike[str]
Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)

__all__ = ["dataset"]


def dataset(action: str, *args: Any, **options: Any) -> list[dict[str, Any]]:
    """One ``data`` action; its ``data.info`` records (the provenance command rebuilds the file).

    * ``dataset("import", src, out, split="train", fmt=None, num_classes=10, labels="fine",
      force=False, progress=None)``: a real dataset (CIFAR-10/100 tarballs or folders, SVHN
      ``.mat`` files, a DM-Improves-AT ``.npz``, an image folder ``ROOT/<class>/*.png``, or
      ``"cifar10"`` to download) into an HDF5 file; ``labels``: CIFAR-100 fine or coarse.
    * ``dataset("info", *files)``: rows, shape, class counts, pixel range, attributes.
    * ``dataset("mix", sources, out, force=False)``: a mixture file of ``FILE.h5[:WEIGHT]`` items.
    * ``dataset("stitch", files, out, force=False)``: files concatenated into one virtual HDF5.

    An existing ``out`` is replaced only with ``force``; an input never is.
    """
    actions: dict[str, Callable[..., list[dict[str, Any]]]] = {
        "import": import_data, "info": data_info, "mix": mix_data, "stitch": stitch_data}
    if action not in actions:
        raise AdvscaleError(f"dataset: unknown action {action!r}; choose from "
                            f"{', '.join(actions)}", field="action")
    return actions[action](*args, **options)


def _info(summary: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    from advscale.data.records import info_record

    return info_record(summary, command=shlex.join(["advscale", "data", *argv]))


def _refuse_existing(out: PathLike, force: bool, inputs: Sequence[PathLike] = ()) -> None:
    from advscale.core.outputs import check_output

    check_output(out, list(inputs), force=force)


def _note(summary: dict[str, Any]) -> None:
    counts = summary.get("class_counts", [])
    log.info(f"{summary['path']}: {summary['n']:,} images {tuple(summary['image_shape'])}, "
             f"{len(counts)} classes, per class {min(counts) if counts else 0:,}"
             f"..{max(counts) if counts else 0:,}, pixels "
             f"{summary.get('pixel_min', '?')}..{summary.get('pixel_max', '?')}")


def import_data(src: str, out: PathLike, *, split: str = "train", fmt: str | None = None,
                num_classes: int = 10, labels: str = "fine", force: bool = False,
                progress: Progress | None = None) -> list[dict[str, Any]]:
    """``dataset("import", ...)``: see :func:`dataset`."""
    from advscale.data.importers import import_dataset

    _refuse_existing(out, force, [src])
    summary = import_dataset(src, out, split=split, fmt=fmt, num_classes=num_classes,
                             labels=labels, progress=progress)
    _note(summary)
    argv = ["import", src, "--split", split, "-o", os.fspath(out), "--num-classes",
            str(num_classes)]
    argv += ["--labels", labels] if labels != "fine" else []
    return [_info(summary, argv + (["--format", fmt] if fmt else []) + ["--force"] * force)]


def data_info(*files: PathLike) -> list[dict[str, Any]]:
    """``dataset("info", ...)``: see :func:`dataset`; adversarial-image files (``attack
    --save-adv``) are summarised by their clean images."""
    from advscale.attacks.advfile import adv_file_summary, is_adv_file
    from advscale.data.layout import summarize

    out = []
    for f in files:
        summary = adv_file_summary(f) if is_adv_file(f) else summarize(f)
        _note(summary)
        out.append(_info(summary, ["info", os.fspath(f)]))
    return out


def mix_data(sources: Sequence[str], out: PathLike, *, force: bool = False
             ) -> list[dict[str, Any]]:
    """``dataset("mix", ...)``: see :func:`dataset`; nothing is copied."""
    from advscale.core.fileio import atomic_write
    from advscale.data.reader import ImageMixture, parse_mixture

    out = Path(out)
    spec = parse_mixture(list(sources))
    _refuse_existing(out, force, list(spec.paths))
    mixture = ImageMixture(spec.paths)  # validates every source
    mixture.check_labels()
    doc = spec.to_json()
    for s, n in zip(doc["sources"], mixture.sizes, strict=True):
        s["n"] = n
        s["path"] = os.path.relpath(Path(s["path"]).resolve(), out.resolve().parent)
    with atomic_write(out) as f:
        json.dump(doc, f, indent=2)
    log.info(f"{out}: mixture of {len(spec.paths)} sources, {len(mixture):,} images")
    summary = {"path": str(out), "n": len(mixture), "attrs": doc}
    return [_info(summary, ["mix", *sources, "-o", str(out), *["--force"] * force])]


def stitch_data(files: Sequence[PathLike], out: PathLike, *, force: bool = False
                ) -> list[dict[str, Any]]:
    """``dataset("stitch", ...)``: see :func:`dataset`; no pixels are copied."""
    from advscale.data.reader import stitch

    files, out = [Path(f) for f in files], Path(out)
    if out.resolve() in {f.resolve() for f in files}:
        raise AdvscaleError(f"{out}: the output must not be one of the inputs", field="out")
    _refuse_existing(out, force, files)  # also a hard link to an input
    summary = stitch(files, out)
    _note(summary)
    return [_info(summary, ["stitch", *map(str, files), "-o", str(out),
                            *["--force"] * force])]
