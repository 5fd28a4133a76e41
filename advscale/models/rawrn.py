"""DeepMind-style pre-activation networks in RobustBench's key layout: RaWRN and MeanSparse WRNs.

One configurable network covers three leaderboard families:

- **RaWRN** (Peng et al. 2023, "Robust Principles", RobustBench ``NormalizedWideResNet``): a
  DeepMind-style WRN with a stem of ``stem_width`` channels, per-stage depths and widths
  (RaWRN-70-16: 96 stem channels, depths 30/31/10, widths 216/432/864), SiLU, and a
  squeeze-and-excitation gate (reduction ``se_ratio`` = 0.25, ReLU inside, sigmoid gate) applied
  to the residual branch after its second convolution;
- **MeanSparse** WRNs (Amini et al. 2024): the same network with a
  :class:`~advscale.models.meansparse.MeanSparse` layer after every block's two batch norms,
  after every residual sum, and after the final batch norm (keys ``meansparse_0/1/2`` and
  ``meansparse_end``);
- plain DeepMind WRNs (16 stem channels, widths 16W/32W/64W, no SE).

Blocks: BN → act → conv3×3 (stride-2 inputs padded (0, 1, 0, 1), stride-1 inputs 1 all round)
→ BN → act → conv3×3 [→ SE] + shortcut, where the shortcut is a 1×1 convolution of the
*activated* input when the channel count changes, else the raw input. Head: BN → act → 8×8 mean
pool → linear. Inputs are [0, 1] images; ``(x − mean) / std`` happens inside. State-dict keys
are RobustBench's (``init_conv``, ``layer.<g>.block.<i>.batchnorm_0`` ..., ``batchnorm``,
``logits``) so published files load without renaming.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advscale.models.meansparse import MeanSparse
from advscale.models.registry import register_family, register_model
from advscale.models.wrn import CIFAR10_MEAN, CIFAR10_STD

_ACTS = {"silu": nn.SiLU, "relu": nn.ReLU}


def _maybe(flag: bool, channels: int) -> nn.Module | None:
    return MeanSparse(channels) if flag else None


def _apply(m: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return x if m is None else m(x)


class SqueezeExcite(nn.Module):
    """Channel gate: mean pool → 1×1 conv → ReLU → 1×1 conv → sigmoid, times the input."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class DMBlock(nn.Module):
    """One pre-activation block (module doc)."""

    def __init__(self, cin: int, cout: int, stride: int, activation: str, groups: int = 1,
                 se_ratio: float | None = None, meansparse: bool = False) -> None:
        super().__init__()
        self.batchnorm_0 = nn.BatchNorm2d(cin)
        self.meansparse_0 = _maybe(meansparse, cin)
        self.relu_0 = _ACTS[activation]()
        self.conv_0 = nn.Conv2d(cin, cout, 3, stride, 0, groups=groups, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(cout)
        self.meansparse_1 = _maybe(meansparse, cout)
        self.relu_1 = _ACTS[activation]()
        self.conv_1 = nn.Conv2d(cout, cout, 3, 1, 1, groups=groups, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=False) if cin != cout else None
        self.se = SqueezeExcite(cout, int(round(se_ratio * cout))) if se_ratio else None
        self.meansparse_2 = _maybe(meansparse, cout)
        self.pad = (0, 1, 0, 1) if stride == 2 else (1, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu_0(_apply(self.meansparse_0, self.batchnorm_0(x)))
        skip = self.shortcut(a) if self.shortcut is not None else x
        o = self.conv_0(F.pad(a, self.pad))
        o = self.conv_1(self.relu_1(_apply(self.meansparse_1, self.batchnorm_1(o))))
        if self.se is not None:
            o = self.se(o)
        return _apply(self.meansparse_2, skip + o)


class BlockGroup(nn.Module):
    """A stage of blocks (key ``block.<i>``)."""

    def __init__(self, n: int, cin: int, cout: int, stride: int, **kw: Any) -> None:
        super().__init__()
        self.block = nn.Sequential(*(DMBlock(cin if i == 0 else cout, cout,
                                             stride if i == 0 else 1, **kw) for i in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DMPreActNet(nn.Module):
    """The configurable network of the module doc; ``features`` also returns stage outputs."""

    def __init__(self, stem_width: int = 16, depths: Sequence[int] = (4, 4, 4),
                 widths: Sequence[int] = (160, 320, 640), num_classes: int = 10,
                 activation: str = "silu", groups: Sequence[int] = (1, 1, 1),
                 se_ratio: float | None = None, meansparse: bool = False,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                 **_ignored: Any) -> None:
        super().__init__()
        if activation not in _ACTS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTS)}")
        self.config = {"stem_width": int(stem_width), "depths": [int(d) for d in depths],
                       "widths": [int(w) for w in widths], "activation": activation,
                       "groups": [int(g) for g in groups], "se_ratio": se_ratio,
                       "meansparse": bool(meansparse)}
        self._mean_std = (tuple(mean), tuple(std))
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.init_conv = nn.Conv2d(3, stem_width, 3, 1, 1, bias=False)
        chans = [stem_width, *widths]
        self.layer = nn.Sequential(*(
            BlockGroup(depths[g], chans[g], chans[g + 1], 1 if g == 0 else 2,
                       activation=activation, groups=groups[g], se_ratio=se_ratio,
                       meansparse=meansparse) for g in range(3)))
        self.batchnorm = nn.BatchNorm2d(chans[3])
        self.meansparse_end = _maybe(meansparse, chans[3])
        self.relu = _ACTS[activation]()
        self.logits = nn.Linear(chans[3], num_classes)

    def reset_constants(self) -> None:
        """Rewrite the non-saved mean/std buffers (after building on the meta device)."""
        dev = self.init_conv.weight.device
        self.mean = torch.tensor(self._mean_std[0], device=dev).view(1, -1, 1, 1)
        self.std = torch.tensor(self._mean_std[1], device=dev).view(1, -1, 1, 1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``(logits, (stage-1 output, stage-2 output))``."""
        o = self.init_conv((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))
        f1 = self.layer[0](o)
        f2 = self.layer[1](f1)
        o = self.relu(_apply(self.meansparse_end, self.batchnorm(self.layer[2](f2))))
        return self.logits(F.adaptive_avg_pool2d(o, 1).flatten(1)), (f1, f2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[0]


TOY = {"stem_width": 16, "depths": [1, 1, 1], "widths": [16, 32, 64]}
"""A tiny DMPreActNet (registry-driven tests)."""
RAWRN_70_16 = {"stem_width": 96, "depths": (30, 31, 10), "widths": (216, 432, 864),
               "se_ratio": 0.25, "activation": "silu"}
"""Peng et al.'s RaWRN-70-16 (RobustBench ``ra_wrn70_16``)."""


def dm_wrn_config(depth: int, width: int) -> dict[str, Any]:
    """The DeepMind WRN-depth-width as a :class:`DMPreActNet` configuration."""
    n = (depth - 4) // 6
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"WRN depth {depth} must be 6k + 4 with k >= 1")
    return {"stem_width": 16, "depths": (n, n, n), "widths": (16 * width, 32 * width, 64 * width)}


@register_model(name="dm-preact", toy=TOY)
def dm_preact(num_classes: int = 10, **kw: Any) -> DMPreActNet:
    """Any :class:`DMPreActNet` by its configuration (used to rebuild imported checkpoints)."""
    return DMPreActNet(num_classes=num_classes, **kw)


@register_model(name="rawrn-70-16", toy=("dm-preact", {**TOY, "se_ratio": 0.25}))
def rawrn_70_16(num_classes: int = 10, **kw: Any) -> DMPreActNet:
    """Peng et al.'s RaWRN-70-16 (SE blocks, SiLU; 267M parameters)."""
    return DMPreActNet(num_classes=num_classes, **{**RAWRN_70_16, **kw})


@register_model(name="ms-rawrn-70-16", toy=("dm-preact", {**TOY, "se_ratio": 0.25,
                                                           "meansparse": True}))
def ms_rawrn_70_16(num_classes: int = 10, **kw: Any) -> DMPreActNet:
    """MeanSparse on RaWRN-70-16 (Amini et al. 2024)."""
    return DMPreActNet(num_classes=num_classes, meansparse=True, **{**RAWRN_70_16, **kw})


@register_family("ms-wrn-D-W", r"ms-wrn-(\d+)-(\d+)", lambda d, w: f"ms-wrn-{d}-{w}",
                 toy=("ms-wrn-10-1", {}))
def ms_wrn(depth: int, width: int, num_classes: int = 10, **kw: Any) -> DMPreActNet:
    """MeanSparse on a DeepMind WRN-depth-width (SiLU)."""
    return DMPreActNet(num_classes=num_classes, meansparse=True,
                       **{**dm_wrn_config(depth, width), **kw})
