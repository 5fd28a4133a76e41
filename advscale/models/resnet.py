"""CIFAR-style ResNets, the field's baselines: ``resnet18``, ``resnet34``, ``resnet50``.

As Madry et al., Rice et al., Wong et al. and RobustBench's ``ResNet`` define them for 32×32
images: a 3×3 stride-1 stem convolution (64 channels) with batch norm and no max-pool, four
stages of 64, 128, 256, 512 channels (strides 1, 2, 2, 2), global average pooling and a linear
classifier. ResNet-18/34 stack BasicBlocks (conv3×3 → BN → act → conv3×3 → BN, plus the
shortcut, then act); ResNet-50 stacks Bottlenecks (1×1 → 3×3 → 1×1 with expansion 4). A
shortcut that changes shape is a 1×1 convolution with batch norm. ResNet-18 for 10 classes has
11,173,962 parameters (RobustBench's ``ResNet18``).

Options (``model_kwargs``): ``activation`` (relu, the default; silu, gelu), ``width`` (the
stem's channels, 64; stages scale with it), ``mean``/``std`` (input normalisation, CIFAR-10's by
default; :mod:`advscale.models.layers`), ``in_chans``. Inputs are images in [0, 1].
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


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm; output channels = ``planes``."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = activation_layer(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(cin, planes, stride)
        self.act2 = activation_layer(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(o + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided) → 1×1 convolutions with batch norm; output = 4 × ``planes``."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.acts = nn.ModuleList(activation_layer(activation) for _ in range(3))
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.acts[0](self.bn1(self.conv1(x)))
        o = self.acts[1](self.bn2(self.conv2(o)))
        return self.acts[2](self.bn3(self.conv3(o)) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class CifarResNet(nn.Module):
    """A CIFAR-style ResNet of ``block`` with ``layers`` blocks per stage (module doc)."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int],
                 num_classes: int = 10, activation: str = "relu", width: int = 64,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                 in_chans: int = 3) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width {width} must be >= 1")
        self.num_classes, self.activation = num_classes, activation
        set_normalisation(self, mean, std)
        self.conv1 = nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = activation_layer(activation)
        stages, cin = resnet_stages(lambda c, p, s: block(c, p, s, activation), layers, width,
                                    block.expansion)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(cin, num_classes)
        self.num_features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.act(self.bn1(self.conv1(normalise(self, x))))
        o = self.layer4(self.layer3(self.layer2(self.layer1(o))))
        return self.linear(self.pool(o).flatten(1))


_TOY = {"width": 4}
"""A ResNet with 4 stem channels: the same code, a few thousand parameters (tests)."""
_SIZES = (("resnet18", BasicBlock, (2, 2, 2, 2),
           "CIFAR ResNet-18 (BasicBlocks 2-2-2-2; 11,173,962 parameters for 10 classes)."),
          ("resnet34", BasicBlock, (3, 4, 6, 3), "CIFAR ResNet-34 (BasicBlocks 3-4-6-3)."),
          ("resnet50", Bottleneck, (3, 4, 6, 3),
           "CIFAR ResNet-50 (Bottlenecks 3-4-6-3, expansion 4)."))


def _entry(block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, ...], doc: str):
    """A registry entry point for one depth; its keywords are the family's options."""

    def entry(num_classes: int = 10, activation: str = "relu", width: int = 64,
              mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD,
              in_chans: int = 3) -> CifarResNet:
        return CifarResNet(block, layers, num_classes, activation, width, mean, std, in_chans)

    entry.__doc__ = doc
    return entry


for _name, _block, _layers, _doc in _SIZES:
    register_model(_entry(_block, _layers, _doc), name=_name, toy=_TOY)
