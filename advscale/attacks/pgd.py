"""k-step PGD (L∞ and L2), the one implementation used by training (TRADES, PGD-AT) and evaluation.

Images live in [0, 1] (normalisation is inside the model). The attack differentiates with
respect to a perturbation ``delta`` in ``model(x + delta)``, never the input leaf itself, which
keeps it countable by ``torch.utils.flop_counter.FlopCounterMode``.

**Losses.** ``cw`` is the CW loss of the reference evaluation (Bartoldson et al.'s and
Gowal et al.'s PGD-40: ``core/attacks/utils.py::CWLoss``): the attacker maximises
``-clamp(z_y - max_{j≠y} z_j, min=0)``, whose gradient vanishes once an image is misclassified.
``cw-margin`` is the unclamped margin ``max_{j≠y} z_j - z_y`` (what ``cw`` meant in records of
schema 1). ``ce`` is cross-entropy; ``kl`` the TRADES attack's KL divergence.

**L2** (:func:`pgd_l2`): the random start is uniform in the ball (a Gaussian direction scaled
to radius ``eps · u^(1/d)``, :func:`l2_ball_start`); each step adds ``step_size`` times the
per-image L2-normalised gradient, projects onto the ball (rescales ``delta`` to norm ``eps``
when longer) and clips ``x + delta`` to [0, 1] (which only shortens ``delta``). :func:`pgd`
picks the norm's function (:data:`PGD_BY_NORM`).

**Batch norm during a training attack** (:func:`attack_bn_mode`): ``train-no-update`` (the
reference's mode, Gowal/Rebuffi's TRADES as trained by DM and LLNL) keeps batch norm on the
batch's statistics without updating the running statistics; ``eval`` (Zhang et al.'s original
TRADES) uses the running statistics. Either way attacking never updates running stats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttackLoss = Literal["ce", "cw", "cw-margin", "kl"]
ATTACK_LOSSES = ("ce", "cw", "cw-margin", "kl")
"""Every loss :func:`pgd_linf` maximises (module doc)."""

BnMode = Literal["train-no-update", "eval"]
BN_MODES = ("train-no-update", "eval")
"""Batch-norm modes of a training attack, the reference's first (:func:`attack_bn_mode`)."""
DEFAULT_ATTACK_BN: BnMode = "train-no-update"


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def frozen_bn(model: nn.Module) -> Iterator[nn.Module]:
    """Put every batch-norm layer in eval mode for the duration (other layers unchanged)."""
    changed = [m for m in _batch_norms(model) if m.training]
    for m in changed:
        m.eval()
    try:
        yield model
    finally:
        for m in changed:
            m.train()


@contextlib.contextmanager
def batch_stats_no_update(model: nn.Module) -> Iterator[nn.Module]:
    """Batch norm on the batch's own statistics, running statistics left untouched.

    Every batch-norm layer is put in train mode with ``track_running_stats = False`` (torch then
    normalises with batch statistics and neither updates ``running_mean``/``running_var`` nor
    counts the batch); both settings are restored afterwards.
    """
    saved = [(m, m.training, m.track_running_stats) for m in _batch_norms(model)]
    for m, _, _ in saved:
        m.train()
        m.track_running_stats = False
    try:
        yield model
    finally:
        for m, training, tracking in saved:
            m.train(training)
            m.track_running_stats = tracking


def attack_bn_mode(model: nn.Module, mode: str) -> contextlib.AbstractContextManager[nn.Module]:
    """The batch-norm context of a training attack: ``train-no-update`` or ``eval`` (module doc)."""
    if mode == "train-no-update":
        return batch_stats_no_update(model)
    if mode == "eval":
        return frozen_bn(model)
    raise ValueError(f"unknown batch-norm mode {mode!r}; choose from {', '.join(BN_MODES)}")


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example CW margin ``max_{j≠y} z_j − z_y`` (positive = misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return other.amax(1) - true


def cw_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example clamped CW loss ``-clamp(z_y - max_{j≠y} z_j, min=0)`` (≤ 0; 0 = misclassified).

    The reference's definition: its gradient is that of the margin while the image is classified
    correctly (ties included) and zero once it is not. The maximum over the other classes routes
    its gradient to one class, as ``torch.max`` does.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return -torch.clamp(true - other.max(1).values, min=0)


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
        return cw_loss(logits.float(), y).sum()
    if loss == "cw-margin":
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

    ``loss``: ``ce`` (cross-entropy), ``cw`` (the reference's clamped CW loss), ``cw-margin``
    (the unclamped CW margin) or ``kl`` (TRADES: KL from the detached ``clean_probs`` to the
    adversarial prediction). ``steps=0`` returns the start point. The caller chooses the
    model's mode; wrap training-time calls in :func:`attack_bn_mode`.

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


L2_TINY = 1e-12
"""Added to L2 norms before dividing (a zero gradient or start stays zero)."""


def _l2_norms(t: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norms of (B, ...) ``t``, shaped (B, 1, ..., 1) for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def l2_ball_start(gaussian: torch.Tensor, uniform: torch.Tensor, eps: float) -> torch.Tensor:
    """A uniform point of the L2 ball of radius ``eps`` per image.

    ``gaussian``: standard normal (B, C, H, W) draws (the direction); ``uniform``: (B,) draws in
    [0, 1) (the radius ``eps · u^(1/d)``, d = C·H·W).
    """
    d = gaussian[0].numel()
    radius = eps * uniform.to(gaussian.dtype).pow(1.0 / d)
    return gaussian / (_l2_norms(gaussian) + L2_TINY) * radius.view(-1, *([1] * (gaussian.dim()
                                                                                  - 1)))


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """``delta`` rescaled per image onto the L2 ball of radius ``eps`` (unchanged inside)."""
    norms = _l2_norms(delta)
    return delta * torch.clamp(eps / (norms + L2_TINY), max=1.0)


def pgd_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    eps: float = 0.5,
    step_size: float = 0.125,
    steps: int = 10,
    loss: AttackLoss = "ce",
    clean_probs: torch.Tensor | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return ``x + delta`` with ``‖delta‖₂ ≤ eps`` per image and pixels in [0, 1], maximising
    ``loss`` (as :func:`pgd_linf`; module doc for the L2 step).

    The random start is :func:`l2_ball_start` of a Gaussian draw of ``x``'s shape and then a
    uniform (B,) draw, both from ``generator`` (or the global RNG); or ``noise``: the start
    perturbation itself (B, C, H, W), e.g. per-image draws
    (:func:`advscale.attacks.robustness.start_delta`).
    """
    x = x.detach()
    if not random_start:
        delta = torch.zeros_like(x)
    elif noise is None:
        g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        u = torch.rand((x.shape[0],), generator=generator, device=x.device, dtype=x.dtype)
        delta = l2_ball_start(g, u, eps)
    elif noise.shape != x.shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}, x {tuple(x.shape)}")
    else:
        delta = noise.to(device=x.device, dtype=x.dtype)
    delta = ((x + delta).clamp(0, 1) - x).detach()
    for _ in range(steps):
        delta.requires_grad_(True)
        objective = attack_loss(model(x + delta), y, loss, clean_probs)
        (grad,) = torch.autograd.grad(objective, delta)
        with torch.no_grad():
            delta = delta + step_size * grad / (_l2_norms(grad) + L2_TINY)
            delta = project_l2(delta, eps)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


PGD_BY_NORM = {"linf": pgd_linf, "l2": pgd_l2}
"""The PGD of each threat model (:data:`advscale.attacks.norms.NORMS`)."""


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
        norm: str = "linf", **kwargs: object) -> torch.Tensor:
    """PGD under ``norm`` (``linf``: :func:`pgd_linf`, ``l2``: :func:`pgd_l2`)."""
    try:
        fn = PGD_BY_NORM[norm]
    except KeyError:
        raise ValueError(f"unknown norm {norm!r}; choose from {', '.join(PGD_BY_NORM)}") from None
    return fn(model, x, y, **kwargs)  # type: ignore[arg-type]
