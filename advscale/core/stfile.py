"""safetensors files with JSON metadata: the one on-disk format for weights and states.

Nothing is ever unpickled. Metadata values are stored as strings: strings as they are, anything
else JSON-encoded; :func:`read_metadata` decodes them back (a value that is not JSON stays a
string). Writes are atomic (temp file + rename) and deterministic: the same tensors and
metadata give the same bytes (safetensors writes metadata in hash order; the header is rewritten
with sorted keys), so ``checkpoint_sha256`` depends on the weights and metadata only.
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
from safetensors.torch import save_file

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


def save_tensors(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor],
                 meta: Mapping[str, Any], what: str = "file") -> Path:
    """Write ``tensors`` (moved to CPU, made contiguous) and ``meta`` atomically.

    A failure (a full disk, a read-only directory) raises one-line AdvscaleError naming
    ``what`` and leaves any previous file at ``path`` untouched.
    """
    path = Path(path)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    try:
        with atomic_path(path, suffix=".safetensors.tmp") as tmp:
            save_file(cpu, str(tmp), metadata=encode_metadata(meta))
            _sort_header(tmp)
    except (OSError, SafetensorError) as e:
        why = "disk full" if getattr(e, "errno", None) == errno.ENOSPC else str(e)
        raise AdvscaleError(f"could not write the {what} {path} ({why}); any previous file "
                            "there is intact") from None
    return path


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors header in place with sorted keys (same length, same offsets)."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        header = json.loads(raw)
        md = header.pop("__metadata__", None)
        ordered: dict[str, Any] = {}
        if md is not None:
            ordered["__metadata__"] = dict(sorted(md.items()))
        ordered.update(sorted(header.items()))
        new = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(new) > n:  # cannot happen for safetensors' own compact header; keep it as is
            return
        f.seek(8)
        f.write(new + b" " * (n - len(new)))


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
