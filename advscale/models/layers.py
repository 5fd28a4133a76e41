"""Pieces every model family shares: activations by name and input normalisation.

Every advscale model takes images in [0, 1] (NCHW) and normalises them itself, ``(x - mean) /
std`` per channel, so attacks work in pixel space and a checkpoint evaluates on raw pixels like
RobustBench's models. ``mean``/``std`` are non-persistent buffers named ``mean`` and ``std`` on
the model (state-dict keys do not depend on them); the checkpoint metadata records them.
``mean = (0, 0, 0)``, ``std = (1, 1, 1)`` is "no normalisation".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
NO_MEAN, NO_STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
"""The identity normalisation (models trained on unnormalised pixels)."""

ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name (``silu``, ``relu``, ``gelu``); ValueError otherwise."""
    try:
        cls = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from "
                         f"{sorted(ACTIVATIONS)}") from None
    return cls() if cls is nn.GELU else cls(inplace=True)


def set_normalisation(model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
    """Give ``model`` its non-persistent ``mean``/``std`` buffers (shape 1×C×1×1)."""
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) != len(std) or not mean:
        raise ValueError(f"mean {mean} and std {std} must have one value per channel")
    if min(std) <= 0:
        raise ValueError(f"std {std} must be positive")
    model.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
    model.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)


def normalise(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(x - model.mean) / model.std`` in ``x``'s dtype."""
    return (x - model.mean.to(x.dtype)) / model.std.to(x.dtype)


def normalisation_of(model: nn.Module) -> tuple[list[float], list[float]] | None:
    """``(mean, std)`` of a model built by advscale, or None when it has no such buffers."""
    mean, std = getattr(model, "mean", None), getattr(model, "std", None)
    if not (isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)):
        return None
    if mean.is_meta or std.is_meta:
        return None
    return _shortest(mean), _shortest(std)


def _shortest(t: torch.Tensor) -> list[float]:
    """The values of a float32 tensor, each as the shortest decimal that round-trips in float32
    (``0.4914``, not ``0.49140000343322754``)."""
    import numpy as np

    return [float(np.format_float_positional(np.float32(v), unique=True, trim="-"))
            for v in t.detach().float().flatten().tolist()]


def resnet_stages(make_block: Callable[[int, int, int], nn.Module], layers: Sequence[int],
                  width: int, expansion: int = 1) -> tuple[list[nn.Sequential], int]:
    """The stages of a CIFAR ResNet: stage i has ``layers[i]`` blocks of ``width · 2^i``
    planes, the first of stages 1, 2, ... with stride 2. ``make_block(cin, planes, stride)``
    builds a block whose output has ``planes · expansion`` channels. Returns the stages and
    the channels of the last one."""
    stages, cin = [], width
    for i, n in enumerate(layers):
        planes, blocks = width * 2 ** i, []
        for j in range(n):
            blocks.append(make_block(cin, planes, 2 if i and not j else 1))
            cin = planes * expansion
        stages.append(nn.Sequential(*blocks))
    return stages, cin


class Normalized(nn.Module):
    """``model`` behind its input normalisation (used for timm models).

    State-dict keys are the inner model's under ``model.``; a state dict without that prefix
    (a checkpoint written before timm models were wrapped) loads into the inner model.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float] = CIFAR10_MEAN,
                 std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        self.model = model
        set_normalisation(self, mean, std)
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(normalise(self, x))

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        if state_dict and not any(str(k).startswith("model.") for k in state_dict):
            return self.model.load_state_dict(state_dict, strict=strict, assign=assign)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
