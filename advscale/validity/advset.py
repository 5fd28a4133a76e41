"""Read the adversarial-image HDF5 file written by ``advscale attack --save-adv``.

The layout is the contract in docs/formats.md: datasets ``index`` (test-set row), ``label``,
``pred_clean``, ``pred_adv`` (int64), ``image_clean`` uint8 (N, H, W, 3), ``image_adv`` float32
(N, H, W, 3) in [0, 1], ``success`` bool (adversarial prediction != label) and ``attack`` (bytes);
attributes ``format_version`` 1, ``kind`` ``"advscale-adversarial"``, ``class_names`` (JSON list),
``model``, ``checkpoint_sha256``, ``eps`` and ``attack_settings`` (JSON). The contract checks
are :func:`advscale.attacks.advfile.check_adv_file`, shared with ``read_adv_file``.

Labels files refer to rows of this file and carry its *fingerprint*, a SHA-256 of the rows'
test-set indices, labels, adversarial predictions and adversarial pixels, so a labels file can
never be scored against a different attack's images by mistake.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advscale.attacks.advfile import check_adv_file
from advscale.core.tensors import quantize_uint8
from advscale.data import CIFAR10_CLASSES
from advscale.data.layout import decode_attr, open_h5
from advscale.errors import AdvscaleError

_CHUNK = 1024


@dataclass
class AdvSet:
    """The rows of an adversarial-image file, with pixels as display-ready uint8 when loaded."""

    path: Path
    index: np.ndarray
    """int64 (N,): the row of each image in the attacked test set."""
    label: np.ndarray
    """int64 (N,): the true class."""
    pred_clean: np.ndarray
    """int64 (N,): the model's prediction on the clean image."""
    pred_adv: np.ndarray
    """int64 (N,): the model's prediction on the adversarial image."""
    success: np.ndarray
    """bool (N,): the attack fooled the model (``pred_adv != label``)."""
    attack: list[str]
    """Per row, the name of the attack that produced the image (AutoAttack sub-attack, ...)."""
    class_names: list[str]
    fingerprint: str
    """SHA-256 (hex) of index, label, pred_adv and the float32 adversarial pixels."""
    attrs: dict[str, Any] = field(default_factory=dict)
    image_clean: np.ndarray | None = None
    """uint8 (N, H, W, 3) clean pixels, or None when loaded without images."""
    image_adv: np.ndarray | None = None
    """uint8 (N, H, W, 3) adversarial pixels rounded to 1/255 for display, or None."""
    invalid_pixels: int = 0
    """Adversarial pixel values that are NaN/infinite or outside [0, 1] (shown clipped)."""
    invalid_rows: list[int] = field(default_factory=list)
    """Rows holding such values (the first 100)."""

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def study_rows(self, include_unfooled: bool = False) -> np.ndarray:
        """Rows to rate: those whose attack fooled the model (the paper's 2629), or all rows."""
        if include_unfooled:
            return np.arange(len(self), dtype=np.int64)
        return np.flatnonzero(self.success).astype(np.int64)

    def n_eval_hint(self) -> int | None:
        """The attacked test-set size from the file's attributes, when the writer recorded it."""
        for key in ("n_eval", "n"):
            v = self.attrs.get(key)
            if isinstance(v, int) and v > 0:
                return v
        settings = self.attrs.get("attack_settings")
        if isinstance(settings, dict):
            for key in ("n_eval", "n"):
                v = settings.get(key)
                if isinstance(v, int) and v > 0:
                    return v
        return None


def load_adv_set(path: str | os.PathLike[str], images: bool = True) -> AdvSet:
    """Read and validate an adversarial-image file; ``images=False`` skips loading pixels.

    Raises AdvscaleError (one line naming the file) for a missing file, a different kind or a
    newer format version, missing datasets, inconsistent lengths or out-of-range labels.
    """
    path = Path(path)
    with open_h5(path, "adversarial-image file") as f:
        attrs = check_adv_file(f, path)
        n = int(f["index"].shape[0])
        shape = f["image_adv"].shape
        index = np.asarray(f["index"][...], dtype=np.int64)
        label = np.asarray(f["label"][...], dtype=np.int64)
        pred_clean = np.asarray(f["pred_clean"][...], dtype=np.int64)
        pred_adv = np.asarray(f["pred_adv"][...], dtype=np.int64)
        success = np.asarray(f["success"][...], dtype=bool)
        if "attack" in f:
            attack = [decode_attr(a) if isinstance(a, bytes) else str(a) for a in f["attack"][...]]
        else:
            attack = [str(attrs.get("attack", ""))] * n
        names = attrs.get("class_names")
        if names is None:

            names = list(CIFAR10_CLASSES)
        if not (isinstance(names, list) and names and all(isinstance(c, str) for c in names)):
            raise AdvscaleError(f"{path}: attribute class_names must be a JSON list of names")
        k = len(names)
        for name, arr in (("label", label), ("pred_clean", pred_clean), ("pred_adv", pred_adv)):
            if n and (arr.min() < 0 or arr.max() >= k):
                raise AdvscaleError(f"{path}: {name} outside [0, {k}) for {k} class names")

        h = hashlib.sha256()
        for arr in (index, label, pred_adv):
            h.update(arr.astype("<i8").tobytes())
        adv_u8 = np.empty(shape, dtype=np.uint8) if images else None
        clean_u8 = np.asarray(f["image_clean"][...], dtype=np.uint8) if images else None
        bad_count, bad_rows = 0, []
        for start in range(0, n, _CHUNK):
            block = np.asarray(f["image_adv"][start : start + _CHUNK], dtype="<f4")
            h.update(block.tobytes())
            bad = ~np.isfinite(block) | (block < 0) | (block > 1)
            if bad.any():
                bad_count += int(bad.sum())
                rows = np.flatnonzero(bad.reshape(len(block), -1).any(axis=1)) + start
                bad_rows.extend(int(r) for r in rows[: 100 - len(bad_rows)])
            if adv_u8 is not None:
                adv_u8[start : start + len(block)] = quantize_uint8(block)
    return AdvSet(
        path=path,
        index=index,
        label=label,
        pred_clean=pred_clean,
        pred_adv=pred_adv,
        success=success,
        attack=attack,
        class_names=list(names),
        fingerprint=h.hexdigest(),
        attrs=attrs,
        image_clean=clean_u8,
        image_adv=adv_u8,
        invalid_pixels=bad_count,
        invalid_rows=bad_rows,
    )


