"""Batch augmentation on the device: random crop (zero padding) and horizontal flip.

Works on the uint8 channels-last batches the reader returns, as one gather per batch: the crop
offset and the flip of each image become row and column indices into the padded batch, so no
Python loop runs per image and nothing leaves the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advscale.core.tensors import to_nchw


def random_crop_flip(
    images: torch.Tensor,
    pad: int = 4,
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Randomly crop each (N, H, W, C) image from its ``pad``-zero-padded version and flip it
    left-right with probability 1/2. Returns a new tensor of the same shape and dtype."""
    n, h, w, _ = images.shape
    dev = images.device
    if pad > 0:
        padded = F.pad(images, (0, 0, pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=generator)
    else:
        padded = images
        oy = ox = torch.zeros(n, dtype=torch.long, device=dev)
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = oy[:, None] + ar_h[None, :]  # (N, H)
    cols = ox[:, None] + ar_w[None, :]  # (N, W)
    if flip:
        flipped = torch.rand(n, device=dev, generator=generator) < 0.5
        cols = torch.where(flipped[:, None], ox[:, None] + (w - 1 - ar_w)[None, :], cols)
    idx = torch.arange(n, device=dev)[:, None, None]
    return padded[idx, rows[:, :, None], cols[:, None, :]]


def to_model_input(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, C) → float32 (N, C, H, W) in [0, 1] (channels-last memory if asked)."""
    x = to_nchw(images)
    return x.contiguous(memory_format=torch.channels_last if channels_last
                        else torch.contiguous_format)
