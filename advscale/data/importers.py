"""Import real image data into the advscale HDF5 layout.

Sources researchers actually have:

* CIFAR-10 "python version": ``cifar-10-python.tar.gz`` or an extracted ``cifar-10-batches-py/``
  directory; or the name ``cifar10`` to download it (needs the internet).
* CIFAR-100 (``cifar-100-python.tar.gz``, fine or coarse labels) and SVHN (``*_32x32.mat``,
  including ``extra``): ``data/official.py``.
* ``.npz`` in the DM-Improves-AT layout (``image`` uint8 N×S×S×3, ``label``), streamed in
  chunks so files larger than memory never load whole.
* An image folder ``ROOT/<class>/*.png|jpg`` of square images of one size.

Each file records its class names, per-channel ``mean``/``std`` and ``image_size``.

Every importer validates shapes, dtypes and label ranges, and writes atomically: on any error the
output file does not exist.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from advscale.core.fileio import atomic_path, file_digest, refuse_overwrite_of_inputs
from advscale.data import CIFAR10_CLASSES
from advscale.data.layout import CIFAR10_MEAN, CIFAR10_STD, ImageFileWriter, summarize
from advscale.errors import AdvscaleError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"  # of the official release
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCHES = ("test_batch",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
"""OS errors of writing the output (never a sign of a corrupted input)."""

Progress = Callable[[int, int], None]
"""Callback ``progress(done, total)`` in rows."""


# ---------------------------------------------------------------------------------------------
# CIFAR-10 python pickles, read without executing arbitrary code


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays, so a crafted batch file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _load_cifar_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR-10 batch pickle into (images N×32×32×3 uint8, labels N int64)."""
    try:
        d = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:  # truncated or not a pickle
        raise AdvscaleError(
            f"{name}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(d, dict):
        raise AdvscaleError(f"{name}: not a CIFAR-10 batch (a {type(d).__name__}, not a dict)")
    data, labels = d.get("data"), d.get("labels", d.get("fine_labels"))
    if data is None or labels is None:
        raise AdvscaleError(f"{name}: CIFAR-10 batch lacks 'data' or 'labels'")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise AdvscaleError(
            f"{name}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise AdvscaleError(f"{name}: {len(labels)} labels for {data.shape[0]} images")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _cifar_members(src: Path, folder: str = "cifar-10-batches-py", what: str = "CIFAR-10"
                   ) -> Callable[[str], bytes]:
    """A function returning the bytes of a named batch from a tarball or an extracted folder."""
    if src.is_dir():
        root = src / folder if (src / folder).is_dir() else src

        def read_dir(name: str) -> bytes:
            p = root / name
            if not p.is_file():
                raise AdvscaleError(f"{src}: missing {what} file {name}")
            return p.read_bytes()

        return read_dir

    try:
        tar = tarfile.open(src, "r:*")
        names = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise AdvscaleError(f"{src}: corrupted or not a tar archive ({e})") from None

    def read_tar(name: str) -> bytes:
        m = names.get(name)
        if m is None:
            raise AdvscaleError(f"{src}: no {name} inside; not a {what} python archive")
        try:
            f = tar.extractfile(m)
            assert f is not None
            return f.read()
        except (tarfile.TarError, EOFError, OSError) as e:
            raise AdvscaleError(f"{src}: corrupted archive while reading {name} ({e})") from None

    return read_tar


def read_cifar10(src: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load a CIFAR-10 split (``train`` or ``test``) from a tarball or extracted folder."""
    if split not in ("train", "test"):
        raise AdvscaleError(f"split {split!r} must be 'train' or 'test'")
    read = _cifar_members(Path(src))
    batches = CIFAR10_TRAIN_BATCHES if split == "train" else CIFAR10_TEST_BATCHES
    parts = [_load_cifar_batch(read(b), f"{src}:{b}") for b in batches]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels


def download_cifar10(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Download the official CIFAR-10 tarball (md5-checked) into ``cache_dir`` and return it."""
    cache = Path(cache_dir or os.environ.get("ADVSCALE_CACHE", Path.home() / ".cache/advscale"))
    dest = cache / "cifar-10-python.tar.gz"
    if dest.is_file() and file_digest(dest, "md5") == CIFAR10_MD5:
        return dest
    try:
        with atomic_path(dest) as tmp, urllib.request.urlopen(CIFAR10_URL, timeout=30) as r:
            with open(tmp, "wb") as out:
                while chunk := r.read(1 << 20):
                    out.write(chunk)
            if file_digest(tmp, "md5") != CIFAR10_MD5:
                raise AdvscaleError(f"downloaded {CIFAR10_URL} has the wrong md5; try again")
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise AdvscaleError(
            f"cannot download CIFAR-10 ({e}); offline? pass a local copy instead, e.g. "
            "`advscale data import path/to/cifar-10-python.tar.gz`"
        ) from None
    return dest


# ---------------------------------------------------------------------------------------------
# .npz (DM-Improves-AT layout), streamed


class NpzMember:
    """A 2-D+ array inside an .npz, read in row chunks without loading it whole.

    Works for stored (``np.savez``) and deflated (``np.savez_compressed``) members alike: the
    ``.npy`` header is parsed and rows are read from the zip stream sequentially.
    """

    def __init__(self, zf: zipfile.ZipFile, key: str, where: str) -> None:
        from numpy.lib import format as npformat

        self.zf, self.key, self.where = zf, key, where
        name = key + ".npy"
        if name not in zf.namelist():
            raise AdvscaleError(f"{where}: no '{key}' array (has {_npz_keys(zf)})")
        self.name = name
        with zf.open(name) as f:
            version = npformat.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = npformat.read_array_header_2_0(f)
        if fortran:
            raise AdvscaleError(f"{where}: '{key}' is Fortran-ordered; save it C-ordered")
        if dtype.hasobject:
            raise AdvscaleError(f"{where}: '{key}' holds Python objects; refusing to unpickle")
        self.shape, self.dtype = tuple(shape), dtype

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        from numpy.lib import format as npformat

        row_items = int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else 1
        row_bytes = row_items * self.dtype.itemsize
        total = self.shape[0] if self.shape else 0
        with self.zf.open(self.name) as f:
            version = npformat.read_magic(f)
            if version == (1, 0):
                npformat.read_array_header_1_0(f)
            else:
                npformat.read_array_header_2_0(f)
            done = 0
            while done < total:
                k = min(rows, total - done)
                buf = f.read(k * row_bytes)
                if len(buf) != k * row_bytes:
                    raise AdvscaleError(f"{self.where}: '{self.key}' is truncated at row {done}")
                yield np.frombuffer(buf, dtype=self.dtype).reshape(k, *self.shape[1:])
                done += k


def _npz_keys(zf: zipfile.ZipFile) -> list[str]:
    return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]


# ---------------------------------------------------------------------------------------------
# Image folders


def _folder_classes(root: Path) -> list[str]:
    dirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise AdvscaleError(f"{root}: no class sub-folders (expected ROOT/<class>/*.png)")
    if set(dirs) == set(CIFAR10_CLASSES):
        return list(CIFAR10_CLASSES)  # keep the canonical CIFAR-10 label order
    return dirs


# ---------------------------------------------------------------------------------------------
# The import entry point


FORMATS = ("cifar10-python", "cifar100-python", "svhn-mat", "npz", "folder")


def detect_format(src: str) -> str:
    """Name the format of ``src``: cifar10-download, cifar10-python, cifar100-python, svhn-mat,
    npz or folder."""
    if src == "cifar10":
        return "cifar10-download"
    p = Path(src)
    if not p.exists():
        raise AdvscaleError(f"{src}: no such file or directory")
    if p.is_dir():
        if (p / "cifar-10-batches-py").is_dir() or (p / "data_batch_1").is_file():
            return "cifar10-python"
        if (p / "cifar-100-python").is_dir() or (p / "meta").is_file() and \
                (p / "train").is_file():
            return "cifar100-python"
        if any(p.glob("*_32x32.mat")):
            return "svhn-mat"
        return "folder"
    name = p.name.lower()
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".mat"):
        return "svhn-mat"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "cifar100-python" if "cifar-100" in name or "cifar100" in name else \
            "cifar10-python"
    raise AdvscaleError(f"{src}: unknown format (expected a CIFAR-10/100 tarball or folder, "
                        "an SVHN .mat, .npz, an image folder, or 'cifar10')")


def import_dataset(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    split: str = "train",
    fmt: str | None = None,
    chunk_rows: int = 8192,
    num_classes: int | None = None,
    labels: str = "fine",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Import ``src`` into an HDF5 image file at ``out`` (atomically); return its summary.

    ``split`` selects CIFAR-10/100's train or test batches, or SVHN's train, test or extra file
    from a folder. ``labels`` is CIFAR-100's label set (``fine`` or ``coarse``).
    ``num_classes`` (default: 10 for npz) bounds labels. Raises AdvscaleError on any invalid
    input, leaving no output file.
    """
    src = str(src)
    fmt = fmt or detect_format(src)
    out = Path(out)
    refuse_overwrite_of_inputs([out], [src])
    if out.is_dir():
        raise AdvscaleError(f"{out}: is a directory; -o names the HDF5 file to write")
    if fmt == "cifar10-download":
        src, fmt = str(download_cifar10()), "cifar10-python"
    if fmt not in FORMATS:
        raise AdvscaleError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})", field="fmt")
    with atomic_path(out, suffix=".h5.tmp") as tmp:
        if fmt == "cifar10-python":
            _import_cifar10(src, tmp, split, progress)
        elif fmt == "cifar100-python":
            _import_cifar100(src, tmp, split, labels, progress)
        elif fmt == "svhn-mat":
            _import_svhn(src, tmp, split, progress)
        elif fmt == "npz":
            _import_npz(src, tmp, chunk_rows, num_classes or 10, progress)
        else:
            _import_folder(src, tmp, progress)
        summary = summarize(tmp)
    summary["path"] = str(out)
    return summary


def _write_blocks(tmp: Path, n: int, block: Callable[[int, int], np.ndarray],
                  labels: np.ndarray, *, source: str, class_names: Any, attrs: dict[str, Any],
                  progress: Progress | None, norm: dict[str, Any] | None = None) -> None:
    """Write ``n`` rows from ``block(start, stop)`` with their labels; record ``mean``/``std``
    (``norm``, else measured over the pixels)."""
    from advscale.data.official import PixelStats

    first = block(0, min(n, 1))
    stats = PixelStats()
    with ImageFileWriter(tmp, n, source=source, class_names=class_names,
                         image_shape=tuple(first.shape[1:]), attrs=attrs) as w:
        for s in range(0, n, 10_000):
            images = block(s, min(s + 10_000, n))
            w.write(images, labels[s : s + 10_000])
            if norm is None:
                stats.add(images)
            if progress:
                progress(min(s + 10_000, n), n)
        w.set_attrs(norm or stats.attrs())


def _import_cifar100(src: str, tmp: Path, split: str, label_set: str,
                     progress: Progress | None) -> None:
    from advscale.data.official import read_cifar100

    images, labels, names = read_cifar100(src, split, label_set)
    _check_labels(labels, len(names), src)
    _write_blocks(tmp, len(images), lambda s, e: images[s:e], labels,
                  source=f"cifar100-{split}", class_names=names,
                  attrs={"origin": str(src), "label_set": label_set}, progress=progress)


def _import_svhn(src: str, tmp: Path, split: str, progress: Progress | None) -> None:
    from advscale.data.official import SVHN_CLASSES, read_svhn, svhn_blocks, svhn_file

    path, split = svhn_file(src, split)
    x, labels = read_svhn(path)
    _write_blocks(tmp, len(labels), svhn_blocks(x), labels, source=f"svhn-{split}",
                  class_names=SVHN_CLASSES, attrs={"origin": str(path)}, progress=progress)


def _check_labels(labels: np.ndarray, k: int, where: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise AdvscaleError(
            f"{where}: label out of range [0, {k}): found {int(labels.min())}..{int(labels.max())}"
        )


def _import_cifar10(src: str, tmp: Path, split: str, progress: Progress | None) -> None:
    images, labels = read_cifar10(src, split)
    _check_labels(labels, 10, src)
    expected = 50_000 if split == "train" else 10_000
    if len(images) != expected:
        raise AdvscaleError(f"{src}: {split} split has {len(images)} images, expected {expected}")
    counts = np.bincount(labels, minlength=10)
    if counts.min() != counts.max():
        raise AdvscaleError(f"{src}: unbalanced CIFAR-10 {split} classes {counts.tolist()}")
    _write_blocks(tmp, len(images), lambda s, e: images[s:e], labels, source=f"cifar10-{split}",
                  class_names=CIFAR10_CLASSES, attrs={"origin": str(src)}, progress=progress,
                  norm={"mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)})


def _import_npz(src: str, tmp: Path, chunk_rows: int, k: int, progress: Progress | None) -> None:
    from advscale.data.official import PixelStats

    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise AdvscaleError(f"{src}: corrupted or truncated .npz ({e})") from None
    try:
        img = NpzMember(zf, "image", src)
        lab = NpzMember(zf, "label", src)
        if len(img.shape) != 4 or img.shape[3] != 3 or img.shape[1] != img.shape[2] or \
                img.shape[1] < 1 or img.dtype != np.uint8:
            raise AdvscaleError(
                f"{src}: 'image' must be uint8 (N, S, S, 3) square images (e.g. N, 32, 32, 3), "
                f"got {img.dtype} {img.shape}"
            )
        if lab.shape != (img.shape[0],) or lab.dtype.kind not in "iu":
            raise AdvscaleError(
                f"{src}: 'label' must be integers of shape ({img.shape[0]},), "
                f"got {lab.dtype} {lab.shape}"
            )
        n = img.shape[0]
        if n == 0:
            raise AdvscaleError(f"{src}: 'image' has no rows; nothing to import")
        stats = PixelStats()
        with ImageFileWriter(tmp, n, source="npz", class_names=CIFAR10_CLASSES[:k]
                             if k == 10 else [str(i) for i in range(k)],
                             image_shape=img.shape[1:], attrs={"origin": str(src)}) as w:
            done = 0
            for im, lb in zip(img.chunks(chunk_rows), lab.chunks(chunk_rows), strict=True):
                lb = lb.astype(np.int64)
                _check_labels(lb, k, f"{src} rows {done}..{done + len(lb)}")
                w.write(im, lb)
                stats.add(im)
                w.commit()
                done += len(im)
                if progress:
                    progress(done, n)
            w.set_attrs(stats.attrs())
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS:
            raise  # writing the output failed (atomic_path names it), not reading the npz
        raise AdvscaleError(f"{src}: corrupted or truncated .npz ({e})") from None
    finally:
        zf.close()


def _import_folder(src: str, tmp: Path, progress: Progress | None) -> None:
    from PIL import Image, UnidentifiedImageError

    from advscale.data.official import PixelStats

    root = Path(src)
    classes = _folder_classes(root)
    files: list[tuple[Path, int]] = []
    for ci, c in enumerate(classes):
        for p in sorted((root / c).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                files.append((p, ci))
    if not files:
        raise AdvscaleError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) under class folders")
    first = _read_image(files[0][0], Image, UnidentifiedImageError)
    shape = first.shape
    if shape[0] != shape[1]:
        raise AdvscaleError(f"{files[0][0]}: image is {shape[1]}x{shape[0]} pixels; advscale "
                            "imports square images (all of one size)")
    stats = PixelStats()
    with ImageFileWriter(tmp, len(files), source="folder", class_names=classes,
                         image_shape=shape, attrs={"origin": str(root)}) as w:
        block: list[np.ndarray] = []
        labels: list[int] = []
        for i, (p, ci) in enumerate(files):
            arr = first if i == 0 else _read_image(p, Image, UnidentifiedImageError)
            if arr.shape != shape:
                raise AdvscaleError(
                    f"{p}: image is {arr.shape[1]}x{arr.shape[0]} pixels, expected "
                    f"{shape[1]}x{shape[0]} like {files[0][0].name}"
                )
            block.append(arr)
            labels.append(ci)
            if len(block) == 4096 or i == len(files) - 1:
                w.write(np.stack(block), np.asarray(labels))
                stats.add(np.stack(block))
                block, labels = [], []
                if progress:
                    progress(i + 1, len(files))
        w.set_attrs(stats.attrs())


def _read_image(path: Path, Image: Any, UnidentifiedImageError: Any) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise AdvscaleError(f"{path}: not a readable image ({e})") from None


