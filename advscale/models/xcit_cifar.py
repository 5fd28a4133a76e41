"""Debenedetti et al. 2022's XCiTs for CIFAR ("A Light Recipe to Train Robust Vision
Transformers"), RobustBench ``Debenedetti2022Light_XCiT-S12/M12/L12``.

timm's XCiT (cross-covariance attention; patch embedding by four 3×3 conv-BN stages separated
by GELU, 12 layers, two class-attention layers, η = 1, token norm) built for patch 16, with the
first and second patch-embedding convolutions' strides set to 1 so a 32×32 image gives patches
of 4×4 (8×8 tokens), the published CIFAR change. Inputs [0, 1] are normalised first by CIFAR-10's
mean/std held as ``normalize.mean``/``normalize.std`` buffers; the XCiT's own keys sit under
``model.`` (the layout of RobustBench's files). Sizes: S12 (embed 384, 8 heads), M12 (512, 8),
L12 (768, 16).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from advscale.models.registry import register_model
from advscale.models.wrn import CIFAR10_MEAN, CIFAR10_STD

XCIT_SIZES = {"s12": (384, 8), "m12": (512, 8), "l12": (768, 16)}
"""(embed dim, heads) of each published size (12 layers each)."""


class Normalize(nn.Module):
    """``(x − mean) / std`` with the statistics as (saved) buffers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class CifarXCiT(nn.Sequential):
    """``normalize`` then a CIFAR-patched timm XCiT ``model`` (module doc)."""

    def __init__(self, embed_dim: int = 384, depth: int = 12, num_heads: int = 8,
                 num_classes: int = 10, mean: Sequence[float] = CIFAR10_MEAN,
                 std: Sequence[float] = CIFAR10_STD, **_ignored: Any) -> None:
        from timm.models.xcit import Xcit  # timm: only when an XCiT is built

        xcit = Xcit(img_size=224, patch_size=16, embed_dim=embed_dim, depth=depth,
                    num_heads=num_heads, eta=1.0, tokens_norm=True, num_classes=num_classes)
        for i in (0, 2):  # patch 16 → 4: the first two embedding convolutions stop striding
            xcit.patch_embed.proj[i][0].stride = (1, 1)
        xcit.patch_embed.patch_size = 4
        super().__init__()
        self.add_module("normalize", Normalize(mean, std))
        self.add_module("model", xcit)
        self.config = {"embed_dim": int(embed_dim), "depth": int(depth),
                       "num_heads": int(num_heads)}


CifarXCiT.mean = property(lambda self: self.normalize.mean,  # type: ignore[attr-defined]
                          doc="The input mean (the normaliser's buffer).")
CifarXCiT.std = property(lambda self: self.normalize.std,  # type: ignore[attr-defined]
                         doc="The input std (the normaliser's buffer).")
TOY = {"embed_dim": 32, "depth": 1, "num_heads": 2}


def _entry(size: str):
    embed, heads = XCIT_SIZES[size]

    def fn(num_classes: int = 10, **kw: Any) -> CifarXCiT:
        return CifarXCiT(**{"embed_dim": embed, "num_heads": heads, **kw},
                         num_classes=num_classes)

    fn.__doc__ = f"XCiT-{size.upper()} for CIFAR (Debenedetti et al. 2022; patches 4×4)."
    return fn


for _size in XCIT_SIZES:
    register_model(_entry(_size), name=f"xcit-{_size}-cifar", toy=("xcit-cifar", TOY))


@register_model(name="xcit-cifar", toy=TOY)
def xcit_cifar(num_classes: int = 10, **kw: Any) -> CifarXCiT:
    """Any :class:`CifarXCiT` by its configuration (rebuilds imported checkpoints)."""
    return CifarXCiT(num_classes=num_classes, **kw)
