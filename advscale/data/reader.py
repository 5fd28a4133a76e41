"""The fast training reader: batches of images from one or many HDF5 files.

``ImageMixture`` concatenates sources (plain or virtual HDF5 files) and returns a whole batch
per call: indices are grouped by file, read in sorted order in one pass per file, and put back
in the sampled order. Contiguous uncompressed datasets (the advscale layout) are read through a
``numpy.memmap`` of the dataset's bytes in the file, which is an order of magnitude faster than
h5py fancy indexing; anything else (chunked, compressed) falls back to a sorted h5py read.

Handles are opened lazily and re-opened in each DataLoader worker process (keyed by pid), so a
mixture can be pickled into workers safely.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader

from advscale.core.fileio import atomic_path
from advscale.data.layout import (
    FORMAT_VERSION,
    IMAGE_KEY,
    LABEL_KEY,
    class_names_of,
    open_image_file,
    summarize,
    valid_count,
)
from advscale.data.validate import LABEL_CHUNK_ROWS, label_counts, labels_problem
from advscale.errors import AdvscaleError


@dataclass
class _Segment:
    """Rows ``[start, start+n)`` of a mixture, stored at rows ``[src_start, ...)`` of a file."""

    file: str
    start: int
    n: int
    src_start: int


class H5ImageSource:
    """One advscale HDF5 image file (plain or a virtual dataset over others).

    ``max_rows`` limits the source to the file's first rows (``train --eval-n``): nothing past
    them is read. Labels are read on first use, in bounded blocks, checked against the file's
    class names and kept in the file's dtype.
    """

    def __init__(self, path: str | os.PathLike[str], max_rows: int | None = None) -> None:
        self.path = str(path)
        with open_image_file(self.path) as f:
            self.n = valid_count(f) if max_rows is None else min(valid_count(f), int(max_rows))
            self.image_shape = tuple(f[IMAGE_KEY].shape[1:])
            self.attrs = dict(f.attrs)
            self.class_names = class_names_of(f)
            self.segments = _segments(f, self.path, self.n)
        self._labels: np.ndarray | None = None
        self._pid: int | None = None
        self._maps: dict[str, Any] = {}

    def check_labels(self) -> None:
        """Check every label against the class names in bounded blocks, keeping none."""
        if self._labels is None:
            with open_image_file(self.path) as f:
                label_counts(f[LABEL_KEY], self.n, len(self.class_names), self.path)

    @property
    def labels(self) -> np.ndarray:
        """Labels of the source's rows (file dtype), read once, in blocks, range-checked."""
        if self._labels is None:
            with open_image_file(self.path) as f:
                d = f[LABEL_KEY]
                out = np.empty(self.n, dtype=d.dtype)
                for s in range(0, self.n, LABEL_CHUNK_ROWS):
                    block = d[s : min(s + LABEL_CHUNK_ROWS, self.n)]
                    problem = labels_problem(block, len(self.class_names), s)
                    if problem is not None:
                        raise AdvscaleError(f"{self.path}: {problem}")
                    out[s : s + len(block)] = block
            self._labels = out
        return self._labels

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_pid"], d["_maps"] = None, {}
        return d

    def _image_array(self, file: str) -> Any:
        """A memmap of ``file``'s image dataset, or the h5py dataset when it can't be mapped."""
        if self._pid != os.getpid():
            self._pid, self._maps = os.getpid(), {}
        arr = self._maps.get(file)
        if arr is None:

            f = h5py.File(file, "r")
            d = f[IMAGE_KEY]
            offset = d.id.get_offset() if d.chunks is None and d.compression is None else None
            rows = max(s.src_start + s.n for s in self.segments if s.file == file)
            if offset is not None and rows > 0 and not d.external:
                # map only the rows this source reads (max_rows), not the declared size
                arr = np.memmap(file, dtype=np.uint8, mode="r", offset=offset,
                                shape=(min(rows, d.shape[0]), *d.shape[1:]))
                f.close()
            else:
                arr = d  # keep the file open for h5py reads
            self._maps[file] = arr
        return arr

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Images at ``rows`` (any order, repeats allowed) as uint8 (k, H, W, 3)."""
        out = np.empty((len(rows), *self.image_shape), dtype=np.uint8)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        for seg in self.segments:
            lo = np.searchsorted(sorted_rows, seg.start, "left")
            hi = np.searchsorted(sorted_rows, seg.start + seg.n, "left")
            if lo == hi:
                continue
            local = sorted_rows[lo:hi] - seg.start + seg.src_start
            arr = self._image_array(seg.file)
            if isinstance(arr, np.ndarray):
                block = arr[local]
            else:  # h5py needs strictly increasing indices
                uniq, inv = np.unique(local, return_inverse=True)
                block = arr[uniq][inv]
            out[order[lo:hi]] = block
        return out


def _segments(f: Any, path: str, n: int) -> list[_Segment]:
    """Resolve a (possibly virtual) image dataset to file segments."""
    d = f[IMAGE_KEY]
    if not d.is_virtual:
        return [_Segment(path, 0, n, 0)]
    base = Path(path).parent
    segs = []
    for m in d.virtual_sources():
        (v0, *_), (v1, *_) = m.vspace.get_select_bounds()
        (s0, *_), _ = m.src_space.get_select_bounds()
        src = Path(m.file_name)
        if m.file_name == ".":
            src = Path(path)
        elif not src.is_absolute():
            src = base / src
        segs.append(_Segment(str(src), int(v0), int(v1 - v0 + 1), int(s0)))
    segs.sort(key=lambda s: s.start)
    return [s for s in segs if s.start < n]


@dataclass
class MixtureSpec:
    """Sources of a training mixture and their sampling weights (None: uniform over union)."""

    paths: list[str]
    weights: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "advscale-mixture",
            "format_version": 1,
            "sources": [
                {"path": p, **({"weight": w} if self.weights else {})}
                for p, w in zip(self.paths, self.weights or [None] * len(self.paths), strict=True)
            ],
        }


def parse_mixture(spec: str | Sequence[str]) -> MixtureSpec:
    """Parse ``a.h5:1,b.h5:7``, a list of such items, or a mixture ``.json`` file.

    Weights are all given or all omitted. Relative paths in a JSON file are relative to it.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    if len(items) == 1 and items[0].endswith(".json"):
        p = Path(items[0])
        try:
            doc = json.loads(p.read_text())
            sources = doc["sources"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise AdvscaleError(f"{p}: not an advscale mixture file ({e})") from None
        paths = [str((p.parent / s["path"]) if not Path(s["path"]).is_absolute() else s["path"])
                 for s in sources]
        ws = [s.get("weight") for s in sources]
    else:
        paths, ws = [], []
        for item in items:
            for part in item.split(","):
                part = part.strip()
                if not part:
                    continue
                path, sep, w = part.rpartition(":")
                if sep and w.replace(".", "", 1).replace("e-", "", 1).isdigit():
                    paths.append(path)
                    ws.append(float(w))
                else:
                    paths.append(part)
                    ws.append(None)
    if not paths:
        raise AdvscaleError("empty data mixture")
    if all(w is None for w in ws):
        return MixtureSpec(paths, None)
    if any(w is None for w in ws):
        raise AdvscaleError("give a weight to every source of the mixture or to none")
    if min(ws) <= 0:
        raise AdvscaleError("mixture weights must be positive")
    return MixtureSpec(paths, [float(w) for w in ws])


class ImageMixture:
    """Several image files as one indexable dataset; ``mixture[idx_array]`` returns a batch.

    Returns ``(images uint8 (k, H, W, 3), labels int64 (k,))`` as numpy arrays; wrap it with
    :func:`torch_loader` for a DataLoader. Sources must share image shape and class count.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], max_rows: int | None = None
                 ) -> None:
        self.sources = [H5ImageSource(p, max_rows) for p in paths]
        shapes = {s.image_shape for s in self.sources}
        if len(shapes) > 1:
            raise AdvscaleError(f"mixture sources have different image shapes: {sorted(shapes)}")
        self.image_shape = shapes.pop()
        self.sizes = [s.n for s in self.sources]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self._labels: np.ndarray | None = None

    @property
    def labels(self) -> np.ndarray:
        """Labels of every row (read on first use; the sources' common integer dtype)."""
        if self._labels is None:
            parts = [s.labels for s in self.sources]
            self._labels = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return self._labels

    def check_labels(self) -> None:
        """Every source's labels in range of its class names (bounded memory)."""
        for s in self.sources:
            s.check_labels()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, idx: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError("mixture index out of range")
        images = np.empty((len(idx), *self.image_shape), dtype=np.uint8)
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for s, src in enumerate(self.sources):
            m = which == s
            if m.any():
                images[m] = src.read(idx[m] - self.offsets[s])
        return images, self.labels[idx].astype(np.int64)


def torch_loader(
    mixture: ImageMixture,
    batch_sampler: Any,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Any:
    """A torch DataLoader yielding ``(uint8 NHWC tensor, int64 tensor)`` batches.

    ``batch_sampler`` yields index arrays (e.g. ResumableBatchSampler); each becomes one
    batched read of the mixture.
    """

    def collate(batch: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        return torch.from_numpy(x), torch.from_numpy(y)

    return DataLoader(
        mixture,
        sampler=batch_sampler,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate,
        persistent_workers=num_workers > 0,
    )


def stitch(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Concatenate image files into one HDF5 virtual dataset at ``out`` without copying pixels.

    Source paths are stored relative to ``out``'s folder when possible, so the set can move.
    """


    out = Path(out)
    infos = []
    for p in paths:
        with open_image_file(p) as f:
            infos.append((str(p), valid_count(f), f[IMAGE_KEY].shape[1:],
                          f[LABEL_KEY].dtype, class_names_of(f), dict(f.attrs)))
    shapes = {i[2] for i in infos}
    if len(shapes) != 1:
        raise AdvscaleError(f"cannot stitch files of different image shapes {sorted(shapes)}")
    names = infos[0][4]
    if any(i[4] != names for i in infos):
        raise AdvscaleError("cannot stitch files with different class names")
    shape = shapes.pop()
    total = sum(i[1] for i in infos)
    img_layout = h5py.VirtualLayout(shape=(total, *shape), dtype=np.uint8)
    lab_layout = h5py.VirtualLayout(shape=(total,), dtype=np.int64)
    row = 0
    for p, n, _, _, _, _ in infos:
        rel = os.path.relpath(os.path.abspath(p), os.path.abspath(out.parent))
        img_layout[row : row + n] = h5py.VirtualSource(rel, IMAGE_KEY, shape=(n, *shape))[:n] \
            if n else None
        lab_layout[row : row + n] = h5py.VirtualSource(rel, LABEL_KEY, shape=(n,))[:n]
        row += n
    with atomic_path(out, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w", libver="latest") as f:
            f.create_virtual_dataset(IMAGE_KEY, img_layout)
            f.create_virtual_dataset(LABEL_KEY, lab_layout)
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["source"] = "stitched"
            f.attrs["class_names"] = json.dumps(names)
            f.attrs["num_classes"] = len(names)
            f.attrs["count"] = total
            f.attrs["parts"] = json.dumps(
                [{"path": os.path.relpath(os.path.abspath(p), os.path.abspath(out.parent)),
                  "n": n, "source": str(a.get("source", ""))} for p, n, _, _, _, a in infos]
            )
        cwd = os.getcwd()
        try:  # relative VDS paths resolve against the cwd at read time for h5py
            os.chdir(out.parent)
            summary = summarize(Path(tmp).name)
        finally:
            os.chdir(cwd)
    summary["path"] = str(out)
    return summary
