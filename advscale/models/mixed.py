"""Bai et al.'s mixed classifiers: an accurate and a robust base model joined on their outputs.

**MixedNUTS** (Bai et al. 2024, RobustBench ``NonLinMixedClassifier``): accurate model ``s``
(BiT-M-R152x2, resizing to 128×128 inside) and robust model ``r`` (RaWRN-70-16). With
``z ↦ (z − mean z) / sqrt(var z + 1e-8)`` the per-image standardisation of a logit vector
(unbiased variance, over all classes since ``ln_k`` = 250 ≥ classes; float64):

    p_s = onehot(argmax s)                      (no gradient needed: the exact hard max)
        = softmax(1e6 · std(s))                 (when a gradient flows: its smooth stand-in)
    p_r = softmax(S · |g|^P · sign g),  g = GELU(std(r) + C)
    logits = log((1 − α) p_s + α p_r)

with the published CIFAR-10 constants S = 5, P = 4, C = −1.1, α = 0.99875006 (RobustBench's
``optimal_spca.yaml``, β = 98.5).

**Bai et al. 2023** (RobustBench ``CompositeModel`` with ``MixingNetV4``): accurate BiT-M-R152x2
on the image resized to 128×128 and robust WRN-70-16 (SiLU) on the image; a mixing network reads
both models' stage-1 and stage-2 features and gives γ; with ``bn`` a one-feature batch norm
without affine terms (running statistics),

    α = sigmoid(bn(γ) · 2 + 1.05) · 0.04 + 0.96
    logits = log((1 − α) softmax(1.2 s) + α softmax(0.3 r)).

The mixing network: stage-1 features concatenated (768 channels for in_planes (512, 256)) → two
pre-activation ReLU blocks to 512 channels (stride 2), plus a 1×1 convolution of the
concatenated stage-2 features; then two blocks each to 768 and 1024 channels (stride 2), mean
pool, linear without bias. Keys are the references' so the published files load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advscale.models.bit import BiTResNetV2
from advscale.models.rawrn import DMPreActNet
from advscale.models.registry import register_model

MIXEDNUTS_CIFAR10 = {"scale": 5.0, "power": 4.0, "clamp_bias": -1.1,
                     "alpha": 0.9987500602493457}
"""MixedNUTS' CIFAR-10 constants (RobustBench ``optimal_spca.yaml``, GELU map, β = 98.5)."""
BAI2023_CIFAR10 = {"gamma_scale": 2.0, "gamma_bias": 1.05, "alpha_scale": 0.04,
                   "alpha_bias": 0.96, "std_scale": 1.2, "rob_scale": 0.3}
"""Bai et al. 2023's CIFAR-10 (EDM) constants (RobustBench ``get_composite_model``)."""
_PLANES = {64: (64, 128, 256, 512), 160: (160, 320, 512, 768), 256: (256, 256, 384, 512),
           512: (512, 256, 384, 512)}
"""Mixing-network stage widths for each base model's stage-1 channel count."""


def standardise(z: torch.Tensor) -> torch.Tensor:
    """Per-row (z − mean) / sqrt(unbiased var + 1e-8), in float64, logits clamped to ±1e15."""
    z = z.double().clamp(-1e15, 1e15)
    return (z - z.mean(1, keepdim=True)) / (z.var(1, keepdim=True) + 1e-8).sqrt()


class MixedNUTS(nn.Module):
    """MixedNUTS (module doc): ``std_model`` and ``rob_model`` keep the reference's names."""

    def __init__(self, std_config: dict[str, Any], rob_config: dict[str, Any],
                 num_classes: int = 10, **_ignored: Any) -> None:
        super().__init__()
        self.config = {"std_config": dict(std_config), "rob_config": dict(rob_config)}
        self.std_model = BiTResNetV2(num_classes=num_classes, **std_config)
        self.rob_model = DMPreActNet(num_classes=num_classes, **rob_config)
        self.c = MIXEDNUTS_CIFAR10

    @property
    def mean(self) -> torch.Tensor:
        """The robust member's input mean (the accurate one normalises by 0.5 / 0.5)."""
        return self.rob_model.mean

    @property
    def std(self) -> torch.Tensor:
        """The robust member's input std."""
        return self.rob_model.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, r = self.std_model(x), self.rob_model(x)
        if s.grad_fn is None:
            p_s = F.one_hot(s.argmax(1), s.shape[1]).to(s.dtype)
        else:
            p_s = torch.softmax(standardise(s) * 1e6, dim=1)
        g = F.gelu(standardise(r) + self.c["clamp_bias"])
        p_r = torch.softmax(g.abs() ** self.c["power"] * g.sign() * self.c["scale"], dim=1)
        a = torch.tensor(self.c["alpha"], dtype=torch.float32).item()
        return torch.log((1 - a) * p_s.double() + a * p_r).float()


class PreActBlock(nn.Module):
    """The mixing network's block: BN → ReLU → conv3×3 → BN → ReLU → conv3×3, plus a 1×1
    projection of the activated input when the shape changes (an empty ``shortcut`` else)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        proj = stride != 1 or cin != cout
        self.shortcut = nn.Sequential(*([nn.Conv2d(cin, cout, 1, stride, bias=False)]
                                        if proj else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        return self.conv2(F.relu(self.bn2(self.conv1(a)))) + self.shortcut(a)


class MixingNet(nn.Module):
    """Bai et al.'s MixingNetV4 for base models with ``in_planes`` stage-1 channels."""

    def __init__(self, in_planes: Sequence[int]) -> None:
        super().__init__()
        ind = [_PLANES[int(p)] for p in in_planes]
        planes = [sum(col) for col in zip(*ind, strict=True)]
        cin, layers = planes[0], []
        for p in planes[1:]:
            layers.append(nn.Sequential(PreActBlock(cin, p, 2), PreActBlock(p, p, 1)))
            cin = p
        self.layers = nn.ModuleList(layers)
        self.linear = nn.Linear(planes[-1], 1, bias=False)
        self.conv1x1 = nn.Conv2d((ind[0][0] + ind[1][0]) * 2, ind[0][1] + ind[1][1], 1,
                                 bias=False)

    def forward(self, f1: Sequence[torch.Tensor], f2: Sequence[torch.Tensor]) -> torch.Tensor:
        o = self.layers[0](torch.cat(list(f1), 1)) + self.conv1x1(torch.cat(list(f2), 1))
        for layer in self.layers[1:]:
            o = layer(o)
        return self.linear(o.mean(dim=(2, 3)))


class CompositeBai2023(nn.Module):
    """Bai et al. 2023's composite model (module doc). ``models.0`` (BiT), ``models.1`` (the
    WRN), ``policy_net`` and ``bn`` keep the reference's names."""

    def __init__(self, std_config: dict[str, Any], rob_config: dict[str, Any],
                 num_classes: int = 10, **_ignored: Any) -> None:
        super().__init__()
        self.config = {"std_config": dict(std_config), "rob_config": dict(rob_config)}
        std = BiTResNetV2(num_classes=num_classes, **std_config)
        rob = DMPreActNet(num_classes=num_classes, **rob_config)
        self.models = nn.ModuleList([std, rob])
        self.policy_net = MixingNet((64 * std.config["wf"] * 4, rob.config["widths"][0]))
        self.bn = nn.BatchNorm1d(1, affine=False, momentum=0.01)
        self.c = BAI2023_CIFAR10

    @property
    def mean(self) -> torch.Tensor:
        """The robust member's input mean (the accurate one normalises by 0.5 / 0.5)."""
        return self.models[1].mean

    @property
    def std(self) -> torch.Tensor:
        """The robust member's input std."""
        return self.models[1].std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, (s1, s2) = self.models[0].features(F.interpolate(x, size=(128, 128), mode="bilinear"))
        r, (r1, r2) = self.models[1].features(x)
        gamma = self.bn(self.policy_net([s1, r1], [s2, r2]))
        c = self.c
        alpha = torch.sigmoid(gamma * c["gamma_scale"] + c["gamma_bias"])
        alpha = alpha * c["alpha_scale"] + c["alpha_bias"]
        return torch.log((1 - alpha) * torch.softmax(s * c["std_scale"], 1)
                         + alpha * torch.softmax(r * c["rob_scale"], 1))


BIT_R152X2 = {"units": (3, 8, 36, 3), "wf": 2}
_TOY_BIT = {"units": [1, 1, 1, 1], "wf": 1}
_TOY_RA = {"stem_width": 16, "depths": [1, 1, 1], "widths": [32, 48, 64], "se_ratio": 0.25}


@register_model(name="mixednuts", toy={"std_config": _TOY_BIT, "rob_config": _TOY_RA})
def mixednuts(num_classes: int = 10, std_config: dict[str, Any] | None = None,
              rob_config: dict[str, Any] | None = None, **_: Any) -> MixedNUTS:
    """MixedNUTS: BiT-M-R152x2 (resizing) + RaWRN-70-16, non-linear logit mixing (CIFAR-10)."""
    from advscale.models.rawrn import RAWRN_70_16

    return MixedNUTS(std_config or {**BIT_R152X2, "resize": True, "norm_params": True},
                     rob_config or dict(RAWRN_70_16), num_classes)


@register_model(name="bai2023-composite", toy={
    "std_config": _TOY_BIT, "rob_config": {"stem_width": 16, "depths": [1, 1, 1],
                                           "widths": [64, 128, 256]}})
def bai2023_composite(num_classes: int = 10, std_config: dict[str, Any] | None = None,
                      rob_config: dict[str, Any] | None = None, **_: Any) -> CompositeBai2023:
    """Bai et al. 2023: BiT-M-R152x2 + WRN-70-16 (SiLU) + MixingNetV4 (CIFAR-10, EDM)."""
    from advscale.models.rawrn import dm_wrn_config

    return CompositeBai2023(std_config or dict(BIT_R152X2),
                            rob_config or dm_wrn_config(70, 16), num_classes)


