"""safetensors files with JSON metadata: the one on-disk format for weights and states.

Nothing is ever unpickled. Metadata values are stored as strings: strings as they are, anything
else JSON-encoded; :func:`read_metadata` decodes them back (a value that is not JSON stays a
string). Writes are atomic (temp file + rename), stream one tensor at a time (safetensors' own
``save_file`` serialises everything in memory first, doubling the peak memory of a 1 GB
checkpoint) and are deterministic: the header is built here with sorted keys (safetensors
writes metadata in hash order), so ``checkpoint_sha256`` depends on the weights and metadata
only. Tensors are laid out by element size, then name, so each is aligned to its dtype.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from advscale.core.fileio import atomic_path
from advscale.errors import AdvscaleError


def encode_metadata(meta: Mapping[str, Any]) -> dict[str, str]:
    """String metadata: strings kept, other values JSON-encoded."""
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def decode_metadata(md: Mapping[str, str]) -> dict[str, Any]:
    """Decode :func:`encode_metadata`'s strings (JSON where it parses, else the string)."""
    out: dict[str, Any] = {}
    for k, v in md.items():
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[k] = v
    return out


_DTYPES = {torch.float64: "F64", torch.int64: "I64", torch.float32: "F32", torch.int32: "I32",
           torch.float16: "F16", torch.bfloat16: "BF16", torch.int16: "I16", torch.int8: "I8",
           torch.uint8: "U8", torch.bool: "BOOL"}


def _layout(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
            ) -> tuple[bytes, list[str]]:
    """The safetensors header (sorted, padded to 8 bytes) and the order tensors follow it in."""
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    entries: dict[str, Any] = {}
    offset = 0
    for k in order:
        t = tensors[k]
        if t.dtype not in _DTYPES:
            raise AdvscaleError(f"tensor {k!r}: dtype {t.dtype} cannot be written")
        n = t.numel() * t.element_size()
        entries[k] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                      "data_offsets": [offset, offset + n]}
        offset += n
    header = {"__metadata__": dict(sorted(metadata.items())), **dict(sorted(entries.items()))}
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return raw + b" " * (-len(raw) % 8), order


def save_file(tensors: Mapping[str, torch.Tensor], filename: str,
              metadata: Mapping[str, str]) -> None:
    """Write a safetensors file (string ``metadata``), one tensor's bytes in memory at a time.

    Not atomic by itself: :func:`save_tensors` writes through a temp file.
    """
    head, order = _layout(tensors, metadata)
    with open(filename, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for k in order:
            t = tensors[k].detach().to("cpu").contiguous()
            f.write(t.reshape(-1).view(torch.uint8).numpy().data)


def save_tensors(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor],
                 meta: Mapping[str, Any], what: str = "file") -> Path:
    """Write ``tensors`` and ``meta`` atomically (streamed; see the module doc).

    A failure (a full disk, a read-only directory) raises one-line AdvscaleError naming
    ``what`` and leaves any previous file at ``path`` untouched.
    """
    path = Path(path)
    try:
        with atomic_path(path, suffix=".safetensors.tmp") as tmp:
            save_file(tensors, str(tmp), encode_metadata(meta))
    except OSError as e:
        why = "disk full" if getattr(e, "errno", None) == errno.ENOSPC else str(e)
        raise AdvscaleError(f"could not write the {what} {path} ({why}); any previous file "
                            "there is intact") from None
    return path


def read_metadata(path: str | os.PathLike[str], what: str = "safetensors file",
                  decode: bool = True) -> dict[str, Any]:
    """The metadata of a safetensors file (decoded unless ``decode=False``)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            md = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise AdvscaleError(f"{path}: not a {what} ({e})") from None
    return decode_metadata(md) if decode else md


def load_tensors(path: str | os.PathLike[str], what: str = "safetensors file",
                 decode: bool = True, device: str | torch.device = "cpu"
                 ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, metadata)`` of a safetensors file; tensors on ``device``."""
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            md = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise AdvscaleError(f"{path}: not a {what} ({e})") from None
    return tensors, (decode_metadata(md) if decode else md)
