"""MeanSparse (Amini et al. 2024): per-channel mean-centred sparsification of activations.

A MeanSparse layer holds a channel's mean ``μ`` and variance ``σ²`` (measured once on training
data) and a scalar ``threshold`` τ. In evaluation it maps ``x ↦ μ`` wherever ``|x − μ| < τ σ``
and leaves ``x`` unchanged elsewhere (τ = 0: the identity). The map is piecewise constant, so
its gradient is zero wherever it acts: gradient attacks see a masked signal and overstate
robustness. RobustBench's "best known" MeanSparse numbers come from BPDA (Athalye et al. 2018):
the forward pass is MeanSparse's, the backward pass treats the layer as the identity
(straight-through). :func:`bpda` switches every MeanSparse layer of a model into that mode.

The buffers (``running_mean``, ``running_var``, ``threshold``, ``flag_update_statistics``,
``batch_num``) keep the published names so published state dicts load unchanged; advscale
never updates the statistics (``flag_update_statistics`` is read, not acted upon).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class MeanSparse(nn.Module):
    """Mean-centred sparsification of ``channels`` channels (NCHW input); module doc."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.zeros(channels))
        self.register_buffer("threshold", torch.tensor(0.0))
        self.register_buffer("flag_update_statistics", torch.tensor(0))
        self.register_buffer("batch_num", torch.tensor(0.0))
        self.straight_through = False
        """BPDA mode: forward unchanged, backward the identity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.threshold.device.type != "meta" and float(self.threshold) == 0.0:
            return x
        mu = self.running_mean.view(1, -1, 1, 1).to(x.dtype)
        band = (self.threshold * self.running_var.sqrt()).view(1, -1, 1, 1).to(x.dtype)
        out = torch.where((x - mu).abs() < band, mu.expand_as(x), x)
        if self.straight_through:
            return x + (out - x).detach()
        return out


def meansparse_layers(model: nn.Module) -> list[MeanSparse]:
    """Every MeanSparse layer of ``model``."""
    return [m for m in model.modules() if isinstance(m, MeanSparse)]


def set_straight_through(model: nn.Module, on: bool) -> int:
    """Switch BPDA mode of every MeanSparse layer; returns how many layers were switched."""
    layers = meansparse_layers(model)
    for m in layers:
        m.straight_through = on
    return len(layers)


@contextmanager
def bpda(model: nn.Module) -> Iterator[int]:
    """Within the block, MeanSparse layers pass gradients straight through (module doc);
    yields the number of layers switched."""
    before = [m.straight_through for m in meansparse_layers(model)]
    try:
        yield set_straight_through(model, True)
    finally:
        for m, b in zip(meansparse_layers(model), before, strict=True):
            m.straight_through = b
