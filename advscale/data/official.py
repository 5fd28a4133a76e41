"""CIFAR-100 and SVHN in their official layouts, and the per-channel pixel statistics of imports.

* CIFAR-100 "python version": ``cifar-100-python.tar.gz`` or its extracted ``cifar-100-python/``
  folder, holding the pickles ``train`` and ``test`` (``data`` uint8 N×3072 in CHW order,
  ``fine_labels``, ``coarse_labels``) and ``meta`` (``fine_label_names``, ``coarse_label_names``).
  Fine labels (100 classes) by default, coarse (20 superclasses) on request.
* SVHN cropped digits: ``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat`` (MATLAB v5,
  read with ``scipy.io.loadmat``): ``X`` uint8 32×32×3×N and ``y`` N×1 in 1..10, where 10 is the
  digit 0 (SVHN's rule), so advscale's label is ``y % 10`` and class ``i`` is named ``"i"``.

Pickles are read by the importers' safe unpickler (numpy arrays and plain containers only).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from advscale.errors import AdvscaleError

CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_LABEL_SETS = {"fine": 100, "coarse": 20}
SVHN_SPLITS = ("train", "test", "extra")
SVHN_CLASSES = tuple(str(i) for i in range(10))

Block = Callable[[int, int], np.ndarray]
"""``block(start, stop)`` returns images ``[start, stop)`` as uint8 (k, H, W, 3)."""


class PixelStats:
    """Per-channel mean and standard deviation of uint8 RGB pixels, exactly, from histograms."""

    def __init__(self) -> None:
        self.hist = np.zeros((3, 256), dtype=np.int64)

    def add(self, images: np.ndarray) -> None:
        """Count the pixels of uint8 (k, H, W, 3) images."""
        flat = images.reshape(-1, 3)
        for c in range(3):
            self.hist[c] += np.bincount(flat[:, c], minlength=256)

    def attrs(self) -> dict[str, list[float]]:
        """``{"mean": [...], "std": [...]}`` as fractions of 255 (6 decimals)."""
        v = np.arange(256, dtype=np.float64) / 255.0
        total = np.maximum(self.hist.sum(axis=1), 1)
        mean = (self.hist * v).sum(axis=1) / total
        var = (self.hist * v**2).sum(axis=1) / total - mean**2
        std = np.sqrt(np.maximum(var, 0.0))
        std = np.where(std > 0, std, 1.0)  # a constant channel: no scaling
        return {"mean": [round(float(m), 6) for m in mean],
                "std": [round(float(s), 6) for s in std]}


# ---------------------------------------------------------------------------------------------
# CIFAR-100


def _unpickle(raw: bytes, name: str) -> dict[str, Any]:
    from advscale.data.importers import _SafeUnpickler

    try:
        d = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:  # truncated or not a pickle
        raise AdvscaleError(f"{name}: not a readable CIFAR-100 pickle ({type(e).__name__}: "
                            f"{e})") from None
    if not isinstance(d, dict):
        raise AdvscaleError(f"{name}: not a CIFAR-100 pickle (a {type(d).__name__}, not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in d.items()}


def _key(d: dict[str, Any], key: str, name: str) -> Any:
    if key not in d:
        raise AdvscaleError(f"{name}: no '{key}' in the pickle; not a CIFAR-100 "
                            f"{name.rsplit(':', 1)[-1]} file")
    return d[key]


def cifar100_class_names(meta: dict[str, Any], label_set: str, name: str) -> list[str]:
    """The ``meta`` pickle's fine or coarse class names, checked (100 or 20 strings)."""
    names = _key(meta, f"{label_set}_label_names", name)
    want = CIFAR100_LABEL_SETS[label_set]
    if not isinstance(names, list | tuple) or len(names) != want:
        raise AdvscaleError(f"{name}: '{label_set}_label_names' must list {want} names, got "
                            f"{len(names) if isinstance(names, list | tuple) else names!r}")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def read_cifar100(src: str | os.PathLike[str], split: str, label_set: str = "fine"
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A CIFAR-100 split: (images uint8 N×32×32×3, labels int64 N, class names)."""
    from advscale.data.importers import _cifar_members

    if split not in ("train", "test"):
        raise AdvscaleError(f"split {split!r} must be 'train' or 'test' for CIFAR-100",
                            field="split")
    if label_set not in CIFAR100_LABEL_SETS:
        raise AdvscaleError(f"labels {label_set!r} must be 'fine' or 'coarse'", field="labels")
    read = _cifar_members(Path(src), CIFAR100_FOLDER, "CIFAR-100")
    names = cifar100_class_names(_unpickle(read("meta"), f"{src}:meta"), label_set,
                                 f"{src}:meta")
    where = f"{src}:{split}"
    d = _unpickle(read(split), where)
    data = np.asarray(_key(d, "data", where))
    labels = _key(d, f"{label_set}_labels", where)
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise AdvscaleError(f"{where}: '{label_set}_labels' are not integers") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise AdvscaleError(f"{where}: 'data' must be uint8 (N, 3072), got {data.dtype} "
                            f"{data.shape}")
    if labels.shape != (data.shape[0],):
        raise AdvscaleError(f"{where}: {labels.size} labels for {data.shape[0]} images")
    if data.shape[0] == 0:
        raise AdvscaleError(f"{where}: no images")
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels, names


# ---------------------------------------------------------------------------------------------
# SVHN


def svhn_file(src: str | os.PathLike[str], split: str) -> tuple[Path, str]:
    """The ``.mat`` file and split of an SVHN source: a file (its split from its name, else
    ``split``) or a folder holding ``{split}_32x32.mat``."""
    p = Path(src)
    if p.is_dir():
        if split not in SVHN_SPLITS:
            raise AdvscaleError(f"split {split!r} must be one of {', '.join(SVHN_SPLITS)} for "
                                "SVHN", field="split")
        f = p / f"{split}_32x32.mat"
        if not f.is_file():
            raise AdvscaleError(f"{p}: no {f.name} (SVHN's {split} split)")
        return f, split
    for s in SVHN_SPLITS:
        if p.name.lower().startswith(f"{s}_"):
            return p, s
    if split not in SVHN_SPLITS:
        raise AdvscaleError(f"split {split!r} must be one of {', '.join(SVHN_SPLITS)} for SVHN",
                            field="split")
    return p, split


def read_svhn(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN ``.mat`` file: (``X`` uint8 (S, S, 3, N) as stored, labels int64 N in 0..9)."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except NotImplementedError:
        raise AdvscaleError(f"{path}: a MATLAB v7.3 file; SVHN's official files are v5 "
                            "(download them again)") from None
    except Exception as e:  # truncated, not a .mat
        raise AdvscaleError(f"{path}: not a readable MATLAB file ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:160]})") from None
    for key in ("X", "y"):
        if key not in mat:
            raise AdvscaleError(f"{path}: no '{key}' variable; not an SVHN file")
    x, y = mat["X"], np.asarray(mat["y"])
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3 or x.shape[0] != x.shape[1] \
            or x.shape[0] < 1:
        raise AdvscaleError(f"{path}: 'X' must be uint8 (S, S, 3, N), got {x.dtype} {x.shape}")
    n = x.shape[3]
    if y.size != n or (y.ndim == 2 and 1 not in y.shape) or y.ndim > 2 or \
            y.dtype.kind not in "iuf":
        raise AdvscaleError(f"{path}: 'y' must be {n}x1 labels, got {y.dtype} {y.shape}")
    y = y.reshape(-1)
    if n == 0:
        raise AdvscaleError(f"{path}: no images")
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise AdvscaleError(f"{path}: 'y' holds non-integer labels")
    y = y.astype(np.int64)
    if y.min() < 1 or y.max() > 10:
        raise AdvscaleError(f"{path}: label out of range [1, 10] (SVHN's 10 is the digit 0): "
                            f"found {int(y.min())}..{int(y.max())}")
    return x, y % 10


def svhn_blocks(x: np.ndarray) -> Block:
    """Rows of SVHN's (S, S, 3, N) array as (k, S, S, 3) blocks, one block copied at a time."""
    return lambda s, e: np.ascontiguousarray(x[..., s:e].transpose(3, 0, 1, 2))
