"""Pre-activation ("DeepMind-style") WideResNets as used by Gowal, Rebuffi, Wang and Bartoldson.

WRN-D-W has (D - 4) / 6 blocks per group and channels 16, 16W, 32W, 64W. Each block is
BN → act → conv3×3 → BN → act → conv3×3 with a 1×1 projection shortcut on the activated input
when the shape changes. Inputs are images in [0, 1]; CIFAR-10 mean/std normalisation happens
inside the model, so attacks work in pixel space. WRN-28-10 has 36,479,194 parameters.

``padding`` says how a block's stride-2 3×3 convolution is padded: ``dm`` (the default) pads
(left 0, right 1, top 0, bottom 1), TensorFlow's SAME, as the DeepMind-style WRN of Gowal et al.,
Rebuffi et al., Wang et al. and Bartoldson et al. does (DM-Improves-AT
``core/models/wideresnetwithswish.py``), so their weights give their logits; ``symmetric`` pads 1
on every side (advscale's WRN before checkpoint format 2). Stride-1 convolutions pad 1 on every
side in both. Parameters and state-dict keys do not depend on it
(:mod:`advscale.models.dm_keys` maps DeepMind-style keys to these).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advscale.core.units import PAPER_WRNS
from advscale.models.layers import (
    ACTIVATIONS,
    CIFAR10_MEAN,
    CIFAR10_STD,
    activation_layer,
    normalise,
    set_normalisation,
)
from advscale.models.registry import register_family, register_model

__all__ = ["ACTIVATIONS", "CIFAR10_MEAN", "CIFAR10_STD", "PADDINGS", "PAPER_WRNS", "WideResNet",
           "wrn"]

PADDINGS = ("dm", "symmetric")
"""Stride-2 paddings (module doc), the default first."""
DM_STRIDE2_PAD = (0, 1, 0, 1)
"""``F.pad`` widths (left, right, top, bottom) of a stride-2 convolution's input under ``dm``."""


def _act(name: str) -> nn.Module:
    return activation_layer(name)


class PreActBlock(nn.Module):
    """One pre-activation residual block."""

    def __init__(self, cin: int, cout: int, stride: int, activation: str,
                 padding: str = "dm") -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; choose from {', '.join(PADDINGS)}")
        # dm: a stride-2 conv pads its input (0, 1, 0, 1) in forward, so the conv itself pads 0
        self.pre_pad = DM_STRIDE2_PAD if padding == "dm" and stride != 1 else None
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = _act(activation)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 0 if self.pre_pad else 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = _act(activation)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.act1(self.bn1(x))
        skip = self.shortcut(o) if self.shortcut is not None else x
        o = self.conv1(o if self.pre_pad is None else F.pad(o, self.pre_pad))
        o = self.conv2(self.act2(self.bn2(o)))
        return o + skip


class WideResNet(nn.Module):
    """WRN-``depth``-``width`` for ``num_classes`` classes on [0, 1] images (NCHW).

    ``padding``: ``dm`` (default) or ``symmetric`` stride-2 padding (module doc).
    """

    def __init__(
        self,
        depth: int = 28,
        width: int = 10,
        num_classes: int = 10,
        activation: str = "silu",
        mean: tuple[float, ...] = CIFAR10_MEAN,
        std: tuple[float, ...] = CIFAR10_STD,
        in_chans: int = 3,
        padding: str = "dm",
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WRN depth {depth} must be 6k + 4 with k >= 1 (10, 16, 22, 28, ...)")
        if width < 1:
            raise ValueError(f"WRN width {width} must be >= 1")
        n = (depth - 4) // 6
        chans = [16, 16 * width, 32 * width, 64 * width]
        self.depth, self.width, self.num_classes = depth, width, num_classes
        self.activation = activation
        self.padding = padding
        set_normalisation(self, mean, std)
        self.stem = nn.Conv2d(in_chans, chans[0], 3, 1, 1, bias=False)
        layers = []
        for g, stride in enumerate((1, 2, 2)):
            for i in range(n):
                cin = chans[g] if i == 0 else chans[g + 1]
                layers.append(PreActBlock(cin, chans[g + 1], stride if i == 0 else 1, activation,
                                          padding))
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(chans[3])
        self.act = _act(activation)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans[3], num_classes)
        self.num_features = chans[3]
        self._init_weights()

    def _init_weights(self) -> None:
        if self.stem.weight.is_meta:
            return  # no values to initialise (a skeleton for counting or checking shapes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(normalise(self, x)))
        x = self.pool(self.act(self.bn(x))).flatten(1)
        return self.fc(x)


WRN_TOY = ("wrn-10-1", {})
"""The family's smallest member (registry-driven tests)."""


def _wrn_name(depth: int, width: int) -> str:
    return f"wrn-{depth}-{width}"


@register_family("wrn-D-W", r"wrn-(\d+)-(\d+)", _wrn_name, toy=WRN_TOY,
                 examples=("wrn-28-10", "wrn-70-16", "wrn-82-8", "wrn-94-16"))
def wrn(depth: int, width: int, num_classes: int = 10, activation: str = "silu",
        padding: str = "dm", mean: tuple[float, ...] = CIFAR10_MEAN,
        std: tuple[float, ...] = CIFAR10_STD, in_chans: int = 3) -> WideResNet:
    """Any WRN-``depth``-``width`` (depth = 6k + 4); ``activation`` silu (default), relu, gelu;
    ``padding`` dm (default) or symmetric; ``mean``/``std`` the input normalisation (CIFAR-10's
    by default); ``in_chans`` input channels."""
    return WideResNet(depth, width, num_classes=num_classes, activation=activation,
                      mean=tuple(mean), std=tuple(std), in_chans=in_chans, padding=padding)


def _register_paper_sizes() -> None:
    for d, w in PAPER_WRNS:
        def entry(num_classes: int = 10, activation: str = "silu", padding: str = "dm",
                  mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD,
                  in_chans: int = 3, *, _d: int = d, _w: int = w) -> WideResNet:
            return wrn(_d, _w, num_classes, activation, padding, mean, std, in_chans)

        entry.__doc__ = f"WRN-{d}-{w} (Bartoldson et al. / Debenedetti et al. sizes)."
        register_model(entry, name=_wrn_name(d, w), toy=WRN_TOY)


_register_paper_sizes()
