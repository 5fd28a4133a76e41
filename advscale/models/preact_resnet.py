"""Pre-activation ResNet-18 (``preactresnet18``), as RobustBench's ``PreActResNet`` defines
it for 32×32 images, with the Rice et al. / Wong et al. variant as options.

A 3×3 stride-1 stem convolution (64 channels, no batch norm, no max-pool), four stages of
PreActBlocks (BN → act → conv3×3 → BN → act → conv3×3; a shape-changing shortcut is a bias-free
1×1 convolution of the block's input), global average pooling and a linear classifier:
11,171,146 parameters for 10 classes, RobustBench's ``PreActResNet18()``.

Options (``model_kwargs``): ``activation`` (relu by default; silu, gelu), ``width`` (stem
channels, 64), ``bn_before_fc`` (a final BN → act before pooling, as Rice et al.'s and Wong et
al.'s code and RobustBench's ``bn_before_fc=True``; 1,024 more parameters), ``preact_shortcut``
(the shortcut convolves the activated input, as their code and RobustBench's ``PreActBlockV2``
do), ``mean``/``std`` (input normalisation, CIFAR-10's by default), ``in_chans``. Inputs are
images in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advscale.models.layers import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    activation_layer,
    normalise,
    resnet_stages,
    set_normalisation,
)
from advscale.models.registry import register_model


class PreActBlock(nn.Module):
    """One pre-activation basic block (module doc)."""

    def __init__(self, cin: int, planes: int, stride: int, activation: str,
                 preact_shortcut: bool = False) -> None:
        super().__init__()
        self.preact_shortcut = preact_shortcut
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = activation_layer(activation)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = activation_layer(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, planes, 1, stride, bias=False)
                         if stride != 1 or cin != planes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.act1(self.bn1(x))
        skip = (x if self.shortcut is None
                else self.shortcut(o if self.preact_shortcut else x))
        o = self.conv2(self.act2(self.bn2(self.conv1(o))))
        return o + skip


class PreActResNet(nn.Module):
    """A pre-activation ResNet with ``layers`` PreActBlocks per stage (module doc)."""

    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2), num_classes: int = 10,
                 activation: str = "relu", width: int = 64, bn_before_fc: bool = False,
                 preact_shortcut: bool = False, mean: Sequence[float] = CIFAR10_MEAN,
                 std: Sequence[float] = CIFAR10_STD, in_chans: int = 3) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width {width} must be >= 1")
        self.num_classes, self.activation = num_classes, activation
        set_normalisation(self, mean, std)
        self.conv1 = nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)
        stages, cin = resnet_stages(
            lambda c, p, s: PreActBlock(c, p, s, activation, preact_shortcut), layers, width)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(cin) if bn_before_fc else None
        self.act = activation_layer(activation)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(cin, num_classes)
        self.num_features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.conv1(normalise(self, x))
        o = self.layer4(self.layer3(self.layer2(self.layer1(o))))
        if self.bn is not None:
            o = self.act(self.bn(o))
        return self.linear(self.pool(o).flatten(1))


@register_model(toy={"width": 4})
def preactresnet18(num_classes: int = 10, activation: str = "relu", width: int = 64,
                   bn_before_fc: bool = False, preact_shortcut: bool = False,
                   mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD,
                   in_chans: int = 3) -> PreActResNet:
    """PreActResNet-18 (PreActBlocks 2-2-2-2; 11,171,146 parameters for 10 classes)."""
    return PreActResNet((2, 2, 2, 2), num_classes, activation, width, bn_before_fc,
                        preact_shortcut, mean, std, in_chans)
