"""The optimizer of the recipe: SGD with Nesterov momentum, weight decay off norms and biases."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights of convolutions/linears with ``weight_decay``; every parameter with
    fewer than 2 dimensions (biases, batch-norm scales and shifts) without it."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_sgd(
    model: nn.Module,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
    fused: bool = False,
) -> torch.optim.SGD:
    """SGD over :func:`param_groups`; ``fused`` selects the fused CUDA kernel."""
    kwargs: dict[str, Any] = {"fused": True} if fused else {}
    return torch.optim.SGD(param_groups(model, weight_decay), lr=lr, momentum=momentum,
                           nesterov=nesterov and momentum > 0, **kwargs)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate."""
    for g in optimizer.param_groups:
        g["lr"] = lr
