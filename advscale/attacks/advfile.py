"""The adversarial-image HDF5 file (``advscale attack --save-adv ADV.h5``), read by ``validity``.

One row per attacked test image (layout in docs/formats.md, "Adversarial images"):

=============== ============================ =============================================
dataset         dtype, shape                 meaning
=============== ============================ =============================================
``index``       int64 (N,)                   row of the image in the test file
``label``       int64 (N,)                   true class
``pred_clean``  int64 (N,)                   model prediction on the clean image
``pred_adv``    int64 (N,)                   model prediction on ``image_adv``
``image_clean`` uint8 (N, 32, 32, 3)         the clean test image
``image_adv``   float32 (N, 32, 32, 3)       the adversarial image in [0, 1], unrounded
``success``     bool (N,)                    ``pred_adv != label``
``attack``      fixed-length bytes (N,)      attack that produced the image (see below)
=============== ============================ =============================================

``image_adv`` stays float32: rounding an 8/255 perturbation to uint8 can undo the attack.
``attack`` is the name of the (sub-)attack that broke the image (``apgd-ce``, ``apgd-t``,
``fab-t``, ``square``, ``apgd-dlr``, ``pgd-cw``, ``pgd-ce``), ``clean`` when the clean image was
already misclassified (``image_adv`` is then the clean image), and empty when the image stayed
robust (``image_adv`` is then AutoAttack's clean image, or PGD's last iterate).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from advscale.core.fileio import atomic_path
from advscale.data.layout import decode_attr, open_h5
from advscale.errors import AdvscaleError

FORMAT_VERSION = 1
KIND = "advscale-adversarial"
REQUIRED = ("index", "label", "pred_clean", "pred_adv", "image_clean", "image_adv", "success")
"""Datasets every reader needs; ``attack`` is optional (older writers)."""
DATASETS = (*REQUIRED, "attack")


def write_adv_file(path: str | os.PathLike[str], parts: Sequence[Any], data: Any,
                   static: Mapping[str, Any], settings: Any) -> Path:
    """Write the chunk results ``parts`` (ChunkResult, in order) of ``data`` atomically."""
    if parts:
        index = np.concatenate([np.arange(p.start, p.stop, dtype=np.int64) for p in parts])
        pred_clean = np.concatenate([np.asarray(p.pred_clean, np.int64) for p in parts])
        pred_adv = np.concatenate([np.asarray(p.pred_adv, np.int64) for p in parts])
        image_adv = np.concatenate([np.asarray(p.x_adv, np.float32) for p in parts])
        names = [b for p in parts for b in p.broken_by]
    else:
        h, w, c = data.images.shape[1:]
        index = pred_clean = pred_adv = np.zeros(0, np.int64)
        image_adv = np.zeros((0, h, w, c), np.float32)
        names = []
    label = data.labels[index].astype(np.int64)
    image_clean = data.images[index]
    width = max([len(s) for s in names] + [1])
    attack = np.array([s.encode() for s in names], dtype=f"S{width}")
    attack_settings = {k: getattr(settings, k) for k in
                       ("attack", "norm", "eps", "steps", "step_size", "n", "batch_size",
                        "chunk_size", "seed")}
    attack_settings.update({k: static.get(k) for k in ("package", "package_version", "data",
                                                       "data_sha256", "settings_key")})
    path = Path(path)
    with atomic_path(path, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("index", data=index)
            f.create_dataset("label", data=label)
            f.create_dataset("pred_clean", data=pred_clean)
            f.create_dataset("pred_adv", data=pred_adv)
            f.create_dataset("image_clean", data=image_clean.astype(np.uint8))
            f.create_dataset("image_adv", data=image_adv.astype(np.float32))
            f.create_dataset("success", data=(pred_adv != label))
            f.create_dataset("attack", data=attack)
            a = f.attrs
            a["format_version"] = FORMAT_VERSION
            a["kind"] = KIND
            a["class_names"] = json.dumps(list(data.class_names))
            a["model"] = str(static.get("model"))
            a["checkpoint_sha256"] = str(static.get("checkpoint_sha256"))
            a["eps"] = float(settings.eps)
            a["attack_settings"] = json.dumps(attack_settings)
    return path


def check_adv_file(f: Any, path: Path) -> dict[str, Any]:
    """Validate an open adversarial-image file against the contract; its decoded attributes.

    One-line AdvscaleError naming ``path`` for another kind, a newer ``format_version``, missing
    datasets, row counts that differ or image arrays that are not (N, H, W, 3).
    """
    attrs = {k: decode_attr(v) for k, v in f.attrs.items()}
    kind = attrs.get("kind")
    if kind is not None and kind != KIND:
        raise AdvscaleError(f"{path}: kind {kind!r} is not an adversarial-image file")
    version = attrs.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise AdvscaleError(f"{path}: format_version {version!r} is newer than this advscale "
                            f"reads ({FORMAT_VERSION})")
    missing = [k for k in REQUIRED if k not in f]
    if missing:
        raise AdvscaleError(f"{path}: missing dataset(s) {', '.join(missing)}")
    n = int(f["index"].shape[0])
    for k in REQUIRED:
        if f[k].shape[:1] != (n,):
            raise AdvscaleError(f"{path}: dataset {k} has {f[k].shape[0]} rows, index {n}")
    shape = f["image_adv"].shape
    if len(shape) != 4 or shape[3] != 3 or f["image_clean"].shape != shape:
        raise AdvscaleError(f"{path}: image_adv/image_clean must both be (N, H, W, 3), got "
                            f"{shape} and {f['image_clean'].shape}")
    return attrs


def read_adv_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """All datasets (numpy arrays; ``attack`` decoded to str) and decoded attrs (``attrs``).

    Validated by :func:`check_adv_file`; ``advscale.validity.advset.load_adv_set`` reads the same
    file for the human study (display pixels, fingerprint).
    """
    p = Path(path)
    with open_h5(p, "adversarial-image file") as f:
        attrs = check_adv_file(f, p)
        out: dict[str, Any] = {k: f[k][()] for k in DATASETS if k in f}
    out["attack"] = [decode_attr(b) for b in out.get("attack", [])]
    out["attrs"] = attrs
    return out


def read_adv_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``attack_settings`` attribute of an adversarial-image file ({} when unreadable)."""
    p = Path(path)
    if not p.is_file():
        return {}
    try:
        with h5py.File(p, "r") as f:
            raw = f.attrs.get("attack_settings", "{}")
        raw = raw.decode() if isinstance(raw, bytes) else raw
        doc = json.loads(raw)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def is_adv_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is an HDF5 file whose ``kind`` attribute names this format."""
    try:
        with h5py.File(path, "r") as f:
            return decode_attr(f.attrs.get("kind", "")) == KIND
    except (OSError, ValueError):
        return False


def adv_file_summary(path: str | os.PathLike[str], pixel_stats_rows: int = 10_000
                     ) -> dict[str, Any]:
    """A ``data.info`` summary of an adversarial-image file (the clean images' statistics)."""
    p = Path(path)
    with open_h5(p, "adversarial-image file") as f:
        attrs = check_adv_file(f, p)
        n = int(f["index"].shape[0])
        names = attrs.get("class_names") or []
        names = json.loads(names) if isinstance(names, str) else list(names)
        labels = f["label"][()]
        counts = np.bincount(labels.astype(np.int64), minlength=len(names)) if n else []
        out: dict[str, Any] = {
            "path": str(path), "n": n, "rows_allocated": n,
            "image_shape": list(f["image_clean"].shape[1:]),
            "image_dtype": str(f["image_clean"].dtype), "label_dtype": str(f["label"].dtype),
            "class_names": names, "class_counts": [int(c) for c in counts],
            "virtual": False, "has_seeds": False, "attrs": attrs,
        }
        if pixel_stats_rows and n:
            sample = f["image_clean"][: min(n, pixel_stats_rows)]
            out.update(pixel_stats_rows=int(len(sample)), pixel_min=int(sample.min()),
                       pixel_max=int(sample.max()), pixel_mean=float(sample.mean() / 255.0))
    return out
