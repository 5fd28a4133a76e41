"""Image layout conversion: the files' uint8 NHWC pixels ↔ the models' float NCHW tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

RANGES = ("unit", "symmetric", "pixel")
"""Float ranges: ``unit`` [0, 1] (classifiers, attacks), ``symmetric`` [−1, 1] (diffusion
models), ``pixel`` [0, 255] (Inception feature extractors)."""


def to_nchw(images: Any, *, value_range: str = "unit", dtype: torch.dtype = torch.float32,
            device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 (N, H, W, C) pixels (numpy or torch) → float (N, C, H, W) in ``value_range``."""
    if value_range not in RANGES:
        raise ValueError(f"value_range must be one of {RANGES}, got {value_range!r}")
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if device is not None:
        x = x.to(device)
    x = x.permute(0, 3, 1, 2).to(dtype)
    if value_range == "unit":
        x = x / 255.0
    elif value_range == "symmetric":
        x = x / 127.5 - 1.0
    return x.contiguous()


def quantize_uint8(x: Any, *, value_range: str = "unit") -> np.ndarray:
    """Float pixels in ``value_range`` (numpy or torch, any layout) → uint8, same layout.

    The one uint8 conversion: scaled in float64, rounded half to even, clipped to 0-255; NaN
    becomes 0.
    """
    if value_range not in RANGES:
        raise ValueError(f"value_range must be one of {RANGES}, got {value_range!r}")
    if isinstance(x, torch.Tensor):
        a = x.detach().to("cpu", torch.float64).numpy()
    else:
        a = np.asarray(x, dtype=np.float64)
    if value_range == "unit":
        a = a * 255.0
    elif value_range == "symmetric":
        a = (a + 1.0) * 127.5
    return np.clip(np.rint(np.nan_to_num(a, nan=0.0)), 0, 255).astype(np.uint8)


def to_uint8_nhwc(x: torch.Tensor, *, value_range: str = "unit") -> np.ndarray:
    """float (N, C, H, W) in ``value_range`` → uint8 (N, H, W, C) numpy (rounded, clipped)."""
    return np.ascontiguousarray(quantize_uint8(x, value_range=value_range).transpose(0, 2, 3, 1))
