"""k-step L∞ PGD, the one implementation used by training (TRADES, PGD-AT) and evaluation.

Images live in [0, 1] (normalisation is inside the model). The attack differentiates with
respect to a perturbation ``delta`` in ``model(x + delta)``, never the input leaf itself, which
keeps it countable by ``torch.utils.flop_counter.FlopCounterMode``. Batch-norm statistics are
frozen during the attack (:func:`frozen_bn`), so attacking never updates running stats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttackLoss = Literal["ce", "cw", "kl"]


@contextlib.contextmanager
def frozen_bn(model: nn.Module) -> Iterator[nn.Module]:
    """Put every batch-norm layer in eval mode for the duration (other layers unchanged)."""
    changed = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            m.eval()
            changed.append(m)
    try:
        yield model
    finally:
        for m in changed:
            m.train()


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example CW margin ``max_{j≠y} z_j − z_y`` (positive = misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return other.amax(1) - true


def attack_loss(
    logits: torch.Tensor,
    y: torch.Tensor | None,
    loss: AttackLoss,
    clean_probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """The summed loss the attacker maximises."""
    if loss == "ce":
        return F.cross_entropy(logits.float(), y, reduction="sum")
    if loss == "cw":
        return cw_margin(logits.float(), y).sum()
    if loss == "kl":
        if clean_probs is None:
            raise ValueError("the KL (TRADES) attack needs the clean probabilities")
        return F.kl_div(F.log_softmax(logits.float(), 1), clean_probs, reduction="sum")
    raise ValueError(f"unknown attack loss {loss!r}")


def pgd_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    eps: float = 8 / 255,
    step_size: float = 2 / 255,
    steps: int = 10,
    loss: AttackLoss = "ce",
    clean_probs: torch.Tensor | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return ``x + delta`` with ``‖delta‖∞ ≤ eps`` and pixels in [0, 1], maximising ``loss``.

    ``loss``: ``ce`` (cross-entropy), ``cw`` (CW margin) or ``kl`` (TRADES: KL from the
    detached ``clean_probs`` to the adversarial prediction). ``steps=0`` returns the start
    point. The caller chooses the model's mode; wrap training-time calls in :func:`frozen_bn`.

    The random start is ``(2u - 1) * eps`` for uniform ``u`` in [0, 1) of ``x``'s shape: drawn
    from ``generator`` (or the global RNG), or given as ``noise`` (e.g. per-image draws,
    :func:`advscale.attacks.robustness.start_noise`).
    """
    x = x.detach()
    if random_start:
        if noise is None:
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        elif noise.shape != x.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, x {tuple(x.shape)}")
        delta = (noise.to(device=x.device, dtype=x.dtype) * 2 - 1) * eps
    else:
        delta = torch.zeros_like(x)
    delta = ((x + delta).clamp(0, 1) - x).detach()
    for _ in range(steps):
        delta.requires_grad_(True)
        objective = attack_loss(model(x + delta), y, loss, clean_probs)
        (grad,) = torch.autograd.grad(objective, delta)
        with torch.no_grad():
            delta = (delta + step_size * grad.sign()).clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()
