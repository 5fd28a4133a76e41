"""The advscale HDF5 image layout (format_version 2; the contract is docs/formats.md).

A file holds ``image`` uint8 (N, H, W, 3) channels-last (square images) and ``label`` (N,)
integer class ids, both contiguous and uncompressed, and optionally ``seed`` int64 (N,)
per-image generator seeds. File attributes: ``format_version``, ``source``, ``class_names``
(JSON list), ``count`` (rows written so far; rows past it are not yet valid), ``mean``/``std``
(per-channel fractions of 255: the normalisation of a model trained on the file),
``image_size``, and any extra provenance (generator, steps, quality metric, ...), all
JSON-encoded when not a plain string or number. Version 1 files (no mean/std/image_size) read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from advscale.data.validate import (
    attrs_problem,
    decoded_attrs,
    image_shape_problem,
    label_counts,
    storage_problem,
)
from advscale.errors import AdvscaleError

FORMAT_VERSION = 2
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
"""CIFAR-10's per-channel normalisation (the papers' constants; the WRN's default)."""
PIXEL_STATS_BYTES = 1 << 28
"""``summarize`` reads at most this many pixel bytes (256 MiB) for its pixel statistics."""
IMAGE_KEY = "image"
LABEL_KEY = "label"
SEED_KEY = "seed"


def _h5py():

    return h5py


def encode_attr(value: Any) -> Any:
    """Attributes are stored as str/int/float; anything else as a JSON string."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str | int | float | np.integer | np.floating):
        return value
    return json.dumps(value)


def decode_attr(value: Any) -> Any:
    """Inverse of :func:`encode_attr` (JSON strings are parsed back when they parse)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


class ImageFileWriter:
    """Create an HDF5 image file of ``n`` rows and fill it in order (or at given offsets).

    ``image`` and ``label`` are allocated contiguous up front (contiguous datasets cannot grow),
    so the row count must be known. ``count`` is committed with :meth:`commit` after each write,
    which is what resumable writers (gen-synthetic) continue from.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        n: int,
        *,
        source: str,
        class_names: Sequence[str],
        image_shape: tuple[int, int, int] = (32, 32, 3),
        with_seeds: bool = False,
        attrs: Mapping[str, Any] | None = None,
        libver: str | tuple[str, str] = "latest",
    ) -> None:
        h5py = _h5py()
        self.path = Path(path)
        self.n = int(n)
        # libver "earliest" (superblock v0) for files that must survive a SIGKILL: newer
        # superblocks keep an "open for write" flag that blocks reopening a killed writer's file.
        self.f = h5py.File(self.path, "w", libver=libver)
        self.f.create_dataset(IMAGE_KEY, shape=(self.n, *image_shape), dtype=np.uint8)
        label_dtype = np.uint8 if len(class_names) <= 256 else np.int32
        self.f.create_dataset(LABEL_KEY, shape=(self.n,), dtype=label_dtype)
        if with_seeds:
            self.f.create_dataset(SEED_KEY, shape=(self.n,), dtype=np.int64)
        a = self.f.attrs
        a["format_version"] = FORMAT_VERSION
        a["source"] = source
        a["class_names"] = json.dumps(list(class_names))
        a["num_classes"] = len(class_names)
        a["count"] = 0
        a["image_size"] = int(image_shape[0])
        for k, v in (attrs or {}).items():
            a[k] = encode_attr(v)
        self.written = 0

    def write(self, images: np.ndarray, labels: np.ndarray, seeds: np.ndarray | None = None,
              start: int | None = None) -> None:
        """Write a block of rows at ``start`` (default: after the last block)."""
        start = self.written if start is None else int(start)
        k = len(images)
        if start + k > self.n:
            raise AdvscaleError(f"{self.path}: writing rows {start}..{start + k} past N={self.n}")
        self.f[IMAGE_KEY][start : start + k] = images
        self.f[LABEL_KEY][start : start + k] = labels
        if seeds is not None:
            self.f[SEED_KEY][start : start + k] = seeds
        self.written = max(self.written, start + k)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Set file attributes after writing (e.g. ``mean``/``std`` measured over the rows)."""
        for k, v in attrs.items():
            self.f.attrs[k] = encode_attr(v)

    def commit(self, count: int | None = None) -> None:
        """Record ``count`` valid rows (default: rows written) and flush to disk."""
        self.f.attrs["count"] = int(self.written if count is None else count)
        self.f.flush()

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str]) -> ImageFileWriter:
        """Reopen a file this class created, to continue after its committed ``count`` rows."""
        h5py = _h5py()
        self = cls.__new__(cls)
        self.path = Path(path)
        try:
            self.f = h5py.File(self.path, "r+")
        except OSError as e:
            raise AdvscaleError(f"{path}: cannot reopen the file to resume ({e})") from None
        problem = _layout_problem(self.f) if IMAGE_KEY in self.f and LABEL_KEY in self.f \
            else "not an advscale image file"
        if problem is not None:
            self.f.close()
            raise AdvscaleError(f"{path}: {problem}; cannot resume it")
        self.n = int(self.f[IMAGE_KEY].shape[0])
        self.written = int(decode_attr(self.f.attrs.get("count", 0)))
        return self

    def close(self) -> None:
        if self.f.id.valid:
            self.commit()
            self.f.close()

    def __enter__(self) -> ImageFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        elif self.f.id.valid:
            self.f.close()


def read_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """All file attributes, decoded."""
    h5py = _h5py()
    with open_image_file(path, h5py) as f:
        return {k: decode_attr(v) for k, v in f.attrs.items()}


def open_h5(path: str | os.PathLike[str], what: str = "file", h5py=None):
    """Open any HDF5 file read-only; one-line AdvscaleError when missing or unreadable."""
    h5py = h5py or _h5py()
    path = Path(path)
    if not path.is_file():
        raise AdvscaleError(f"{path}: no such {what}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise AdvscaleError(f"{path}: not a readable HDF5 file ({e})") from None


def open_image_file(path: str | os.PathLike[str], h5py=None):
    """Open an image file read-only, checking the layout; AdvscaleError when it is not one.

    Checks the datasets (``image`` uint8 (N, H, W, 3), ``label`` (N,) integers) and the
    attributes readers trust: ``format_version`` (an integer this advscale reads) and ``count``
    (an integer in [0, N]). The message is built before the file is closed.
    """
    path = Path(path)
    f = open_h5(path, h5py=h5py)
    try:
        problem = _layout_problem(f)
    except AdvscaleError as e:
        problem = str(e).removeprefix(f"{f.filename}: ")
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as e:
        problem = f"unreadable HDF5 structure ({type(e).__name__}: {e})"
    if problem is not None:
        f.close()
        raise AdvscaleError(f"{path}: {problem}")
    return f


def _layout_problem(f) -> str | None:
    """What is wrong with an open image file's layout, or None."""
    for key in (IMAGE_KEY, LABEL_KEY):
        if key not in f or not hasattr(f[key], "shape"):
            return f"not an advscale image file (no '{key}' dataset)"
    img, lab = f[IMAGE_KEY], f[LABEL_KEY]
    if img.ndim != 4 or img.shape[-1] != 3 or img.dtype != np.uint8:
        return f"'image' must be uint8 (N, H, W, 3) channels-last, got {img.dtype} {img.shape}"
    if lab.shape != (img.shape[0],):
        return f"'label' shape {lab.shape} != ({img.shape[0]},): one label per image"
    if lab.dtype.kind not in "iu":
        return f"'label' must hold integers, got {lab.dtype}"
    attrs = decoded_attrs(f)
    problem = image_shape_problem(img.shape[1:3], attrs) or attrs_problem(attrs)
    if problem is not None:
        return problem
    version = decode_attr(f.attrs.get("format_version", FORMAT_VERSION))
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"format_version {version!r} is not a positive integer"
    if version > FORMAT_VERSION:
        return (f"format_version {version} is newer than this advscale reads "
                f"({FORMAT_VERSION}); upgrade advscale")
    problem = count_problem(f.attrs.get("count", img.shape[0]), img.shape[0])
    if problem is not None:
        return problem
    return storage_problem(f, int(decode_attr(f.attrs.get("count", img.shape[0]))))


def count_problem(count: Any, n: int) -> str | None:
    """Why a ``count`` attribute is not an integer in [0, n], or None when it is."""
    count = decode_attr(count)
    if isinstance(count, bool) or not isinstance(count, int | np.integer):
        return f"attribute count {count!r} is not an integer number of rows"
    if not 0 <= int(count) <= n:
        return f"attribute count {int(count)} is outside 0..{n} (the rows allocated)"
    return None


def valid_count(f) -> int:
    """Rows of an open image file that are valid (the ``count`` attribute, else all rows)."""
    n = int(f[IMAGE_KEY].shape[0])
    count = f.attrs.get("count", n)
    problem = count_problem(count, n)
    if problem is not None:
        raise AdvscaleError(f"{f.filename}: {problem}")
    return int(decode_attr(count))


def class_names_of(f) -> list[str]:
    """The class names of an open image file (``class_names``, else ``num_classes`` ids,
    else CIFAR-10's 10); AdvscaleError when the attributes are invalid."""
    attrs = {k: decode_attr(f.attrs[k]) for k in ("class_names", "num_classes") if k in f.attrs}
    problem = attrs_problem(attrs)
    if problem is not None:
        raise AdvscaleError(f"{f.filename}: {problem}")
    names = attrs.get("class_names") or None
    if names is None:
        k = attrs.get("num_classes", 10)
        names = [str(i) for i in range(int(k))]
    return [str(n) for n in names]


Norm = tuple[tuple[float, ...], tuple[float, ...]]
"""``(mean, std)`` per channel, fractions of 255."""


def normalisation_of(attrs: Mapping[str, Any]) -> Norm | None:
    """``(mean, std)`` per channel (fractions of 255) a model trained on a file with these
    (decoded) attributes uses: ``mean``/``std``; else CIFAR-10's for a CIFAR-10 file (by
    ``source`` or class names); else None (the model's own default)."""
    mean, std = attrs.get("mean"), attrs.get("std")
    if mean is not None and std is not None and attrs_problem({"mean": mean, "std": std}) is None:
        return tuple(float(x) for x in mean), tuple(float(x) for x in std)
    from advscale.data import CIFAR10_CLASSES

    source = str(attrs.get("source", ""))
    if source.startswith("cifar10-") or attrs.get("class_names") == list(CIFAR10_CLASSES):
        return CIFAR10_MEAN, CIFAR10_STD
    return None


def dataset_normalisation(paths: Sequence[str | os.PathLike[str]]) -> Norm | None:
    """The normalisation of a training mixture: that of its first source that has one."""
    for p in paths:
        with open_image_file(p) as f:
            norm = normalisation_of(decoded_attrs(f))
        if norm is not None:
            return norm
    return None


def summarize(path: str | os.PathLike[str], pixel_stats_rows: int = 10_000) -> dict[str, Any]:
    """A JSON-able summary of an image file: rows, shape, class counts, pixel range, attrs.

    Labels are read in bounded blocks and checked against the class names; pixel statistics use
    the first ``pixel_stats_rows`` rows (0 for none), at most ``PIXEL_STATS_BYTES`` of them.
    """
    h5py = _h5py()
    with open_image_file(path, h5py) as f:
        img, lab = f[IMAGE_KEY], f[LABEL_KEY]
        n = valid_count(f)
        names = class_names_of(f)
        counts = label_counts(lab, n, len(names), str(path)) if n else []
        out: dict[str, Any] = {
            "path": str(path),
            "n": n,
            "rows_allocated": int(img.shape[0]),
            "image_shape": list(img.shape[1:]),
            "image_dtype": str(img.dtype),
            "label_dtype": str(lab.dtype),
            "class_names": names,
            "class_counts": [int(c) for c in counts],
            "contiguous": img.chunks is None and img.compression is None,
            "virtual": bool(img.is_virtual),
            "has_seeds": SEED_KEY in f,
            "attrs": decoded_attrs(f),
        }
        row_bytes = max(int(np.prod(img.shape[1:], dtype=np.int64)), 1)
        k = min(n, pixel_stats_rows, max(PIXEL_STATS_BYTES // row_bytes, 1))
        if pixel_stats_rows and k:
            sample = img[:k]
            out["pixel_stats_rows"] = int(k)
            out["pixel_min"] = int(sample.min())
            out["pixel_max"] = int(sample.max())
            out["pixel_mean"] = float(sample.mean() / 255.0)
        return out
