"""Inputs of ``advscale attack``: the test images (HDF5) and the checkpoints to evaluate."""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advscale.core.fileio import file_sha256
from advscale.core.logs import log_line
from advscale.core.tensors import to_nchw
from advscale.data.layout import (
    IMAGE_KEY,
    LABEL_KEY,
    class_names_of,
    normalisation_of,
    open_image_file,
    valid_count,
)
from advscale.data.validate import decoded_attrs, labels_problem
from advscale.errors import AdvscaleError
from advscale.models.checkpoint import read_checkpoint_metadata, resolve_checkpoint

Log = Callable[[str], None]


logger = logging.getLogger(__name__)


def info_log(message: str) -> None:
    """The default log of ``advscale attack``: an INFO line of this module's logger (the CLI
    shows it on stderr as ``advscale attack: ...``; ``-q`` silences it)."""
    log_line(logger, message)


stderr_log = info_log
"""The old name of :func:`info_log`."""


@dataclass
class TestData:
    """The first ``n`` images of a test file, in file order."""

    path: str
    images: np.ndarray
    """uint8 (n, H, W, 3)."""
    labels: np.ndarray
    """int64 (n,)."""
    class_names: list[str]
    available: int
    """Valid rows in the file."""
    sha256: str = ""
    """sha256 of the selected labels (int64) and images (uint8), little-endian bytes."""
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    """The file's per-channel ``(mean, std)`` (docs/formats.md §1), None when it has none."""


def count_test_images(path: str | os.PathLike[str]) -> int:
    """Valid rows of an advscale HDF5 image file."""
    with open_image_file(path) as f:
        return valid_count(f)


def load_test_data(path: str | os.PathLike[str], n: int) -> TestData:
    """Read the first ``n`` images and labels of an advscale HDF5 file (docs/formats.md §1)."""
    with open_image_file(path) as f:
        available = valid_count(f)
        if n > available:
            raise AdvscaleError(f"{path}: n {n} exceeds its {available} valid images", field="n")
        names = class_names_of(f)
        labels = np.asarray(f[LABEL_KEY][:n]).astype(np.int64)
        problem = labels_problem(labels, len(names))
        if problem is not None:
            raise AdvscaleError(f"{path}: {problem}")
        images = np.ascontiguousarray(f[IMAGE_KEY][:n])
        norm = normalisation_of(decoded_attrs(f))
    h = hashlib.sha256()
    h.update(labels.astype("<i8").tobytes())
    h.update(images.tobytes())
    return TestData(str(path), images, labels, list(names), available, h.hexdigest(), norm)


@dataclass
class Target:
    """One checkpoint to evaluate."""

    path: Path
    sha256: str
    meta: dict[str, Any]


_GLOB_CHARS = set("*?[")


def resolve_targets(specs: Sequence[str | os.PathLike[str]], log: Log = info_log
                    ) -> list[Target]:
    """Checkpoint files from paths, run directories and (quoted) glob patterns.

    A run directory means its ``last.safetensors``. A glob's matches that are not (yet)
    checkpoints, e.g. a run directory that has not saved one, are skipped with a note; an
    explicit path that is not an advscale checkpoint is an error. Duplicates are dropped.
    """
    out: list[Target] = []
    seen: set[Path] = set()
    for spec in specs:
        spec = os.fspath(spec)
        is_glob = bool(_GLOB_CHARS & set(spec)) and not Path(spec).exists()
        paths = sorted(glob.glob(spec)) if is_glob else [spec]
        if is_glob and not paths:
            log(f"advscale attack: {spec}: no checkpoint matches (yet)")
        for p in paths:
            try:
                ckpt = resolve_checkpoint(p)
                meta = read_checkpoint_metadata(ckpt)
            except AdvscaleError as e:
                if is_glob:
                    log(f"advscale attack: skipping {p}: {e}")
                    continue
                raise
            real = ckpt.resolve()
            if real in seen:
                continue
            seen.add(real)
            out.append(Target(ckpt, file_sha256(ckpt), meta))
    return out


def check_model_fits(model: Any, data: TestData, device: Any) -> None:
    """One forward pass on a test image; AdvscaleError when model and data do not fit."""
    x = to_nchw(data.images[:1], device=device)
    try:
        with torch.no_grad():
            logits = model(x)
    except RuntimeError as e:
        msg = " ".join(str(e).split())[:200]
        raise AdvscaleError(f"model does not accept images of shape "
                            f"{tuple(data.images.shape[1:])} from {data.path} ({msg})") from None
    if logits.ndim != 2 or logits.shape[1] != len(data.class_names):
        raise AdvscaleError(f"model outputs {tuple(logits.shape[1:])} logits but {data.path} "
                            f"has {len(data.class_names)} classes")
    _note_normalisation(model, data)


def _note_normalisation(model: Any, data: TestData) -> None:
    """Warn when the model's input mean/std differ from the test file's (the model applies its
    own normalisation, as recorded in its checkpoint; one without any is not warned about)."""
    mean, std = getattr(model, "mean", None), getattr(model, "std", None)
    if data.normalisation is None or not isinstance(mean, torch.Tensor) or \
            not isinstance(std, torch.Tensor) or mean.numel() != 3 or std.numel() != 3:
        return
    want = torch.tensor([*data.normalisation[0], *data.normalisation[1]])
    have = torch.cat([mean.flatten().cpu().float(), std.flatten().cpu().float()])
    identity = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    if not torch.allclose(have, want, atol=0.02) and not torch.allclose(have, identity):
        logging.getLogger(__name__).warning(
            "%s: the model normalises with mean %s std %s, the data's are %s %s; a model "
            "trained on other data?", data.path, [round(float(v), 4) for v in have[:3]],
            [round(float(v), 4) for v in have[3:]], list(data.normalisation[0]),
            list(data.normalisation[1]))
