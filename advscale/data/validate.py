"""The one dataset validator: an image file's storage, attributes and labels (docs/formats.md §1).

:func:`storage_problem` runs on every open (``layout.open_image_file``) and looks only at
metadata, never at pixels: stitched (virtual) parts and HDF5 external raw storage must exist and
hold the rows they lend, a contiguous dataset's declared rows must lie inside the file and have
been written, a chunked one must store the chunks under ``count``. So no reader sees silent
zeros, and no declared size is trusted before an allocation.

:func:`attrs_problem` checks the attributes readers use (``class_names``, ``num_classes``,
``mean``/``std``, ``image_size``) and that every attribute decodes; :func:`labels_problem`
checks labels against the named classes. :func:`validate_image_file` runs all three and is what
``data info``, ``train``, ``attack``, ``gen-synthetic`` and ``validity`` call.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from advscale.errors import AdvscaleError

LABEL_CHUNK_ROWS = 1 << 22
"""Labels are read in blocks of this many rows (4 Mi rows; at most 32 MiB as int64)."""

MAX_CLASSES = 1_000_000
_MAX_DEPTH = 4
"""Stitched files of stitched files are followed this deep."""


def _resolve(name: str, holder: str, relative_to_holder: bool) -> Path:
    """A part's path as HDF5 resolves it: '.' is the holder itself; relative paths are taken
    against the holder's folder (virtual parts, advscale's reader) or the cwd (external)."""
    if name == ".":
        return Path(holder)
    p = Path(name)
    if p.is_absolute() or not relative_to_holder:
        return p
    return Path(holder).parent / p


def _virtual_problem(d: Any, holder: str, rows: int, depth: int) -> str | None:
    import h5py

    if depth > _MAX_DEPTH:
        return f"stitched more than {_MAX_DEPTH} levels deep"
    for m in d.virtual_sources():
        (v0, *_), _ = m.vspace.get_select_bounds()
        if v0 >= rows:
            continue
        (s0, *_), (s1, *_) = m.src_space.get_select_bounds()
        part = _resolve(m.file_name, holder, relative_to_holder=True)
        if not part.is_file():
            return f"stitched part {part} is missing (its rows would read as zeros)"
        if part == Path(holder):
            continue
        try:
            with h5py.File(part, "r") as pf:
                if m.dset_name not in pf:
                    return f"stitched part {part} has no '{m.dset_name}' dataset"
                pd = pf[m.dset_name]
                if pd.shape[0] <= s1:
                    return (f"stitched part {part} holds {pd.shape[0]} rows of "
                            f"'{m.dset_name}', fewer than the {s1 + 1} it lends")
                sub = storage_problem_of(pd, str(part), s1 + 1, depth + 1)
        except OSError as e:
            return f"stitched part {part} is not a readable HDF5 file ({e})"
        if sub is not None:
            return f"stitched part {part}: {sub}"
    return None


def _external_problem(d: Any, rows: int) -> str | None:
    row_bytes = int(np.prod(d.shape[1:], dtype=np.int64)) * d.dtype.itemsize
    need = rows * row_bytes
    for name, offset, size in d.external:
        if need <= 0:
            break
        fname = name.decode() if isinstance(name, bytes) else str(name)
        part = _resolve(fname, "", relative_to_holder=False)
        take = need if size is None or int(size) >= 2**62 else min(int(size), need)
        if not part.is_file():
            return f"external storage file {part} of '{d.name.lstrip('/')}' is missing"
        have = os.path.getsize(part)
        if have < int(offset) + take:
            return (f"external storage file {part} of '{d.name.lstrip('/')}' holds {have} "
                    f"bytes, fewer than the {int(offset) + take} declared")
        need -= take
    if need > 0:
        return f"external storage of '{d.name.lstrip('/')}' is shorter than its {rows} rows"
    return None


def _plain_problem(d: Any, path: str, rows: int) -> str | None:
    if rows == 0:
        return None
    name = d.name.lstrip("/")
    row_bytes = int(np.prod(d.shape[1:], dtype=np.int64)) * d.dtype.itemsize
    import h5py

    if d.id.get_create_plist().get_layout() == h5py.h5d.COMPACT:
        return None  # stored in the object header itself
    if d.chunks is None:
        offset = d.id.get_offset()
        if offset is None:
            return (f"'{name}' declares {rows} rows but none were ever written "
                    "(they would read as zeros)")
        size = os.path.getsize(path) if os.path.isfile(path) else None
        if size is not None and offset + rows * row_bytes > size:
            return (f"'{name}' declares {rows} rows ({rows * row_bytes:,} bytes) but the file "
                    f"ends {max(size - offset, 0):,} bytes into them (truncated?)")
        return None
    per_row_chunks = int(np.prod([math.ceil(s / c) for s, c in
                                  zip(d.shape[1:], d.chunks[1:], strict=True)]))
    needed = math.ceil(rows / d.chunks[0]) * per_row_chunks
    stored = d.id.get_num_chunks()
    if stored < needed:
        return (f"'{name}' declares {rows} rows but stores {stored} of the {needed} chunks "
                "that hold them (the rest would read as zeros)")
    return None


def storage_problem_of(d: Any, path: str, rows: int, depth: int = 0) -> str | None:
    """Why the first ``rows`` rows of dataset ``d`` of file ``path`` cannot be read, or None."""
    if d.is_virtual:
        return _virtual_problem(d, path, rows, depth)
    if d.external:
        return _external_problem(d, rows)
    return _plain_problem(d, path, rows)


def storage_problem(f: Any, rows: int) -> str | None:
    """Why an open image file's ``image``/``label`` rows ``[0, rows)`` are not really stored."""
    for key in ("image", "label"):
        try:
            problem = storage_problem_of(f[key], f.filename, rows)
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as e:
            problem = f"cannot check the storage of '{key}' ({type(e).__name__}: {e})"
        if problem is not None:
            return problem
    return None


# ---------------------------------------------------------------------------------------------
# attributes


def _names_problem(names: Any, k: Any) -> str | None:
    if names == []:
        names = None
    if names is not None:
        if not isinstance(names, list) or not names or len(names) > MAX_CLASSES or \
                not all(isinstance(n, str) for n in names):
            return "attribute class_names is not a JSON list of 1 or more strings"
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_CLASSES:
            return f"attribute num_classes {k!r} is not a positive integer"
        if names is not None and len(names) != k:
            return f"attribute num_classes {k} != the {len(names)} class_names"
    return None


def _vector_problem(key: str, v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) == 3 and all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    if not ok or (key == "std" and min(v) <= 0) or (key == "mean" and not 0 <= min(v) <= max(v)
                                                     <= 1):
        return f"attribute {key} {v!r} is not 3 finite per-channel fractions" + \
            (" (std > 0)" if key == "std" else "")
    return None


KNOWN_ATTRS = frozenset({"format_version", "source", "class_names", "num_classes", "count",
                         "origin", "label_set", "mean", "std", "image_size", "parts"})
"""Attributes readers use (docs/formats.md §1): one that cannot be decoded is an error. Any
other undecodable attribute reads as null (readers ignore fields they do not know)."""


def decoded_attrs(f: Any) -> dict[str, Any]:
    """Every attribute of an open file, decoded to JSON-able values; AdvscaleError naming a
    known attribute (:data:`KNOWN_ATTRS`) that cannot be read or decoded."""
    from advscale.data.layout import decode_attr

    out: dict[str, Any] = {}
    try:
        keys = list(f.attrs.keys())
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise AdvscaleError(f"{f.filename}: attributes cannot be read ({e})") from None
    for k in keys:
        try:
            out[str(k)] = _jsonable(decode_attr(f.attrs[k]), f.filename, k)
        except (OSError, RuntimeError, ValueError, TypeError, UnicodeError) as e:
            if k in KNOWN_ATTRS:
                raise AdvscaleError(f"{f.filename}: attribute {k!r} cannot be decoded "
                                    f"({type(e).__name__}: {e})") from None
            out[str(k)] = None
        except AdvscaleError:
            if k in KNOWN_ATTRS:
                raise
            out[str(k)] = None
    return out


def _jsonable(v: Any, path: str, key: str) -> Any:
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biufSUO" or v.size > 4096:
            raise AdvscaleError(f"{path}: attribute {key!r} holds a {v.dtype} array of "
                                f"shape {v.shape}, not a value advscale reads")
        if v.dtype.kind in "SUO":
            return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
                    for x in v.ravel().tolist()]
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if v is None or isinstance(v, str | int | float | bool | list | dict):
        return v
    raise AdvscaleError(f"{path}: attribute {key!r} of type {type(v).__name__} cannot be "
                        "decoded")


def attrs_problem(attrs: dict[str, Any]) -> str | None:
    """What is wrong with the attributes readers use, or None."""
    for key in ("class_names", "parts", "mean", "std"):
        v = attrs.get(key)
        if isinstance(v, str) and v[:1] in "[{":
            return f"attribute {key} is not valid JSON ({v[:40]!r})"
    problem = _names_problem(attrs.get("class_names"), attrs.get("num_classes"))
    for key in ("mean", "std"):
        if problem is None and key in attrs:
            problem = _vector_problem(key, attrs[key])
    size = attrs.get("image_size")
    if problem is None and size is not None and (isinstance(size, bool) or
                                                 not isinstance(size, int) or size < 1):
        problem = f"attribute image_size {size!r} is not a positive integer"
    return problem


def image_shape_problem(shape: tuple[int, ...], attrs: dict[str, Any]) -> str | None:
    """A 0-sized or non-square image shape, or one that disagrees with ``image_size``."""
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        return f"images are {h}x{w} pixels (empty)"
    if h != w:
        return f"images are {h}x{w} pixels; advscale reads square images"
    size = attrs.get("image_size")
    if isinstance(size, int) and size != h:
        return f"attribute image_size {size} != the images' {h}x{w} pixels"
    return None


# ---------------------------------------------------------------------------------------------
# labels


def label_counts(d: Any, rows: int, k: int, path: str, chunk: int = LABEL_CHUNK_ROWS
                 ) -> np.ndarray:
    """Per-class counts of labels ``[0, rows)`` of dataset ``d``, read in bounded blocks;
    AdvscaleError naming ``path`` on a label outside ``[0, k)``."""
    counts = np.zeros(k, dtype=np.int64)
    for s in range(0, rows, chunk):
        block = np.asarray(d[s : min(s + chunk, rows)])
        problem = labels_problem(block, k, s)
        if problem is not None:
            raise AdvscaleError(f"{path}: {problem}")
        counts += np.bincount(block.astype(np.int64), minlength=k)[:k]
    return counts


def labels_problem(labels: np.ndarray, k: int, first_row: int = 0) -> str | None:
    """A label outside ``[0, k)`` (negative, or past the named classes), or None."""
    if not labels.size:
        return None
    lo, hi = int(labels.min()), int(labels.max())
    if lo >= 0 and hi < k:
        return None
    bad = int(np.flatnonzero((labels < 0) | (labels >= k))[0]) + first_row
    return (f"label {int(labels[bad - first_row])} at row {bad} is outside the {k} named "
            f"classes [0, {k})")


def validate_image_file(path: str | os.PathLike[str], rows: int | None = None) -> dict[str, Any]:
    """Open ``path`` (all checks of :func:`layout.open_image_file`), read and check its labels
    ``[0, rows)`` (default: all valid rows) in bounded blocks; return ``{n, class_names,
    class_counts, attrs, image_shape}``. AdvscaleError with one line naming the file."""
    from advscale.data.layout import class_names_of, open_image_file, valid_count

    with open_image_file(path) as f:
        n = valid_count(f)
        rows = n if rows is None else min(int(rows), n)
        names = class_names_of(f)
        counts = label_counts(f["label"], rows, len(names), str(path))
        return {"n": n, "class_names": names, "class_counts": counts,
                "attrs": decoded_attrs(f), "image_shape": tuple(f["image"].shape[1:])}
