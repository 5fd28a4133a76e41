"""BiT ResNet-v2 (Kolesnikov et al. 2020), the accurate base model of Bai et al.'s mixtures.

Pre-activation bottleneck ResNet with GroupNorm (32 groups) and weight-standardised
convolutions (each filter's weights centred and scaled to unit variance, ε = 1e-10, before the
convolution). Root: std-conv 7×7/2 (64·wf channels) → zero pad 1 → max pool 3×3/2. Four stages
of ``units`` bottlenecks (GN → ReLU → 1×1 → GN → ReLU → 3×3 (the stage's stride) → GN → ReLU →
1×1, with a std-conv 1×1 projection of the activated input on each stage's first unit), widths
256/512/1024/2048 × wf. Head: GN → ReLU → mean pool → 1×1 conv with bias. BiT-M-R152x2:
units 3/8/36/3, wf = 2. Inputs [0, 1] are normalised by mean 0.5, std 0.5 + 1e-8 (the
reference's constants) at the resolution given; ``resize`` (MixedNUTS' ``bit_rn_v2``) first
resizes bilinearly to 128×128 inside the model. ``norm_params`` keeps the reference's ``mean``
and ``std`` parameters in the state dict (``bit_rn_v2``); otherwise they are constants.
Keys are the reference's (``root.conv``, ``body.block<s>.unit<NN>.gn1/conv1/...``, ``head.gn``,
``head.conv``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advscale.models.registry import register_model


class StdConv2d(nn.Conv2d):
    """A convolution with per-filter standardised weights (biased variance, ε = 1e-10)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v, m = torch.var_mean(self.weight, dim=[1, 2, 3], keepdim=True, unbiased=False)
        w = (self.weight - m) / torch.sqrt(v + 1e-10)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Bottleneck(nn.Module):
    """One pre-activation bottleneck unit (module doc)."""

    def __init__(self, cin: int, cout: int, cmid: int, stride: int = 1) -> None:
        super().__init__()
        self.gn1 = nn.GroupNorm(32, cin)
        self.conv1 = StdConv2d(cin, cmid, 1, bias=False)
        self.gn2 = nn.GroupNorm(32, cmid)
        self.conv2 = StdConv2d(cmid, cmid, 3, stride, 1, bias=False)
        self.gn3 = nn.GroupNorm(32, cmid)
        self.conv3 = StdConv2d(cmid, cout, 1, bias=False)
        self.downsample = (StdConv2d(cin, cout, 1, stride, bias=False)
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.gn1(x))
        skip = self.downsample(a) if self.downsample is not None else x
        o = self.conv2(F.relu(self.gn2(self.conv1(a))))
        return self.conv3(F.relu(self.gn3(o))) + skip


class BiTResNetV2(nn.Module):
    """BiT ResNet-v2 (module doc); ``features`` also returns stage-1 and stage-2 outputs."""

    def __init__(self, units: Sequence[int] = (3, 8, 36, 3), wf: int = 2, num_classes: int = 10,
                 resize: bool = False, norm_params: bool = False, **_ignored: Any) -> None:
        super().__init__()
        self.config = {"units": [int(u) for u in units], "wf": int(wf), "resize": bool(resize),
                       "norm_params": bool(norm_params)}
        half = torch.full((1, 3, 1, 1), 0.5)
        if norm_params:
            self.mean = nn.Parameter(half.view(3, 1, 1).clone())
            self.std = nn.Parameter(half.view(3, 1, 1).clone())
        else:
            self.register_buffer("mean", half.clone(), persistent=False)
            self.register_buffer("std", half.clone(), persistent=False)
        self.resize = resize
        self.root = nn.Sequential(OrderedDict([
            ("conv", StdConv2d(3, 64 * wf, 7, 2, 3, bias=False)),
            ("pad", nn.ConstantPad2d(1, 0.0)), ("pool", nn.MaxPool2d(3, 2, 0))]))
        stages, cin = [], 64 * wf
        for s, n in enumerate(units):
            cout, cmid = 256 * wf * 2 ** s, 64 * wf * 2 ** s
            stages.append((f"block{s + 1}", nn.Sequential(OrderedDict(
                (f"unit{i + 1:02d}", Bottleneck(cin if i == 0 else cout, cout, cmid,
                                                2 if i == 0 and s > 0 else 1))
                for i in range(n)))))
            cin = cout
        self.body = nn.Sequential(OrderedDict(stages))
        self.head = nn.Sequential(OrderedDict([
            ("gn", nn.GroupNorm(32, cin)), ("relu", nn.ReLU()),
            ("avg", nn.AdaptiveAvgPool2d(1)), ("conv", nn.Conv2d(cin, num_classes, 1))]))

    def reset_constants(self) -> None:
        """Rewrite non-saved mean/std buffers (0.5) after building on the meta device."""
        if not isinstance(self.mean, nn.Parameter):
            dev = self.root.conv.weight.device
            self.mean = torch.full((1, 3, 1, 1), 0.5, device=dev)
            self.std = torch.full((1, 3, 1, 1), 0.5, device=dev)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``(logits, (stage-1 output, stage-2 output))``."""
        if self.resize:
            x = F.interpolate(x, size=(128, 128), mode="bilinear")
        mean, std = self.mean.view(1, 3, 1, 1), self.std.view(1, 3, 1, 1)
        x = (x - mean.to(x.dtype)) / (std.to(x.dtype) + 1e-8)
        f1 = self.body[0](self.root(x))
        f2 = self.body[1](f1)
        out = self.head(self.body[3](self.body[2](f2)))
        return out[..., 0, 0], (f1, f2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[0]


TOY = {"units": [1, 1, 1, 1], "wf": 1}


@register_model(name="bit-m-r152x2", toy=("bit-resnetv2", TOY))
def bit_m_r152x2(num_classes: int = 10, **kw: Any) -> BiTResNetV2:
    """BiT-M-R152x2 (units 3/8/36/3, width ×2; 232M parameters)."""
    return BiTResNetV2(num_classes=num_classes, **kw)


@register_model(name="bit-resnetv2", toy=TOY)
def bit_resnetv2(num_classes: int = 10, **kw: Any) -> BiTResNetV2:
    """Any :class:`BiTResNetV2` by its configuration (rebuilds imported checkpoints)."""
    return BiTResNetV2(num_classes=num_classes, **kw)
