"""Huang et al. 2022's robust WRN-A4 ("Revisiting Residual Networks for Adversarial Robustness").

A pre-activation WideResNet with per-stage depths and widths, as RobustBench's
``robust_resnet.PreActResNet``: stem conv3×3 (16 channels) → three stages of basic blocks
(BN → act → conv3×3 (stride on the first block of a stage, symmetric padding) → BN → act →
conv3×3, plus a 1×1 projection of the *activated* input when shape changes, else the raw input)
→ BN → act → global mean pool → linear. WRN-A4: depths 27/28/13, widths 16·10, 32·14, 64·6
(160/448/384), SiLU. Inputs are [0, 1] images normalised inside by CIFAR-10's mean/std (the
reference's ``mu``/``sigma``, which its checkpoints usually do not carry).

State-dict keys are the reference's: ``stem_conv``, ``blocks.<s>.layer.<i>.bn1/conv1/bn2/conv2``,
``blocks.<s>.layer.<i>.shortcut.0``, ``norm1``, ``fc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from advscale.models.registry import register_model
from advscale.models.wrn import CIFAR10_MEAN, CIFAR10_STD

_ACTS = {"silu": nn.SiLU, "relu": nn.ReLU}


class BasicBlock(nn.Module):
    """One pre-activation basic block (module doc)."""

    def __init__(self, cin: int, cout: int, stride: int, activation: str) -> None:
        super().__init__()
        self.act = _ACTS[activation]()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False))
                         if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(self.bn1(x))
        skip = self.shortcut(a) if self.shortcut is not None else x
        return self.conv2(self.act(self.bn2(self.conv1(a)))) + skip


class Stage(nn.Module):
    """``layer.<i>``: the blocks of one stage."""

    def __init__(self, n: int, cin: int, cout: int, stride: int, activation: str) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(BasicBlock(cin if i == 0 else cout, cout,
                                                stride if i == 0 else 1, activation)
                                     for i in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class RobustPreActResNet(nn.Module):
    """WRN-A-style network (module doc); ``channels`` = (stem, stage 1, 2, 3)."""

    def __init__(self, channels: Sequence[int] = (16, 160, 448, 384),
                 depths: Sequence[int] = (27, 28, 13), num_classes: int = 10,
                 activation: str = "silu", mean: Sequence[float] = CIFAR10_MEAN,
                 std: Sequence[float] = CIFAR10_STD, **_ignored: Any) -> None:
        super().__init__()
        if activation not in _ACTS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTS)}")
        self.config = {"channels": [int(c) for c in channels], "depths": [int(d) for d in depths],
                       "activation": activation}
        self._mean_std = (tuple(mean), tuple(std))
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.stem_conv = nn.Conv2d(3, channels[0], 3, 1, 1, bias=False)
        self.blocks = nn.ModuleList(Stage(depths[s], channels[s], channels[s + 1],
                                          1 if s == 0 else 2, activation) for s in range(3))
        self.norm1 = nn.BatchNorm2d(channels[3])
        self.act1 = _ACTS[activation]()
        self.fc = nn.Linear(channels[3], num_classes)

    def reset_constants(self) -> None:
        """Rewrite the non-saved mean/std buffers (after building on the meta device)."""
        dev = self.stem_conv.weight.device
        self.mean = torch.tensor(self._mean_std[0], device=dev).view(1, -1, 1, 1)
        self.std = torch.tensor(self._mean_std[1], device=dev).view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.stem_conv((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))
        for stage in self.blocks:
            o = stage(o)
        return self.fc(self.act1(self.norm1(o)).mean(dim=(2, 3)))


TOY = {"channels": [16, 32, 48, 40], "depths": [1, 1, 1]}


@register_model(name="wrn-a4", toy=("robust-preact", TOY))
def wrn_a4(num_classes: int = 10, **kw: Any) -> RobustPreActResNet:
    """Huang et al.'s WRN-A4 (depths 27/28/13, widths 160/448/384, SiLU; 147M parameters)."""
    return RobustPreActResNet(num_classes=num_classes, **kw)


@register_model(name="robust-preact", toy=TOY)
def robust_preact(num_classes: int = 10, **kw: Any) -> RobustPreActResNet:
    """Any :class:`RobustPreActResNet` by its configuration (rebuilds imported checkpoints)."""
    return RobustPreActResNet(num_classes=num_classes, **kw)
