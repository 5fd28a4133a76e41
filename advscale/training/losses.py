"""Training objectives: TRADES (Zhang et al. 2019), PGD-AT (Madry et al. 2018) and standard.

Each ``*_step_loss`` runs the whole forward computation of one training step, including the
attack, and returns a scalar loss to backpropagate plus the logits. The attack (and TRADES's
clean forward that gives its target) runs in :attr:`AttackConfig.bn`'s batch-norm mode: by
default ``train-no-update``, the reference's (Gowal/Rebuffi TRADES in
``gowal21uncovering/utils/trades.py``: batch statistics, running statistics not updated), or
``eval`` (Zhang et al.'s original: running statistics); see
:func:`advscale.attacks.pgd.attack_bn_mode`. The loss's own forward passes run in the model's
current mode (training: batch statistics, each updating the running statistics).
The TRADES objective itself is :func:`advscale.attacks.trades.trades_objective` (shared with the
evaluation). Each loss takes its attack as ``attack_fn`` (default: the PGD of
:attr:`AttackConfig.norm`, :data:`advscale.attacks.pgd.PGD_BY_NORM`), so the FLOP counter
(:mod:`advscale.training.flops`) can pass a watched one.

**L2** (``AttackConfig.norm="l2"``): the same objectives with L2 PGD
(:func:`advscale.attacks.pgd.pgd_l2`: uniform start in the ball, normalised-gradient steps,
projection onto the ball and [0, 1]); its default step is 2.5·ε/steps (Madry et al. 2018), so
ε/4 for the 10-step attack (:func:`advscale.attacks.norms.default_step_size`).

FLOPs per TRADES-k step (Bartoldson et al., appendix B): 1 clean forward + k × (forward +
input-gradient backward) + 2 forwards + a backward through both ≈ (2k + 7) forward passes,
27 for k = 10; PGD-AT-k ≈ 2k + 3; standard ≈ 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advscale.attacks.pgd import DEFAULT_ATTACK_BN, PGD_BY_NORM, attack_bn_mode
from advscale.attacks.trades import trades_objective

Attack = Callable[..., torch.Tensor]
"""The attack a loss runs: :func:`advscale.attacks.pgd.pgd_linf` or a function with its
signature (the FLOP counter passes a wrapper that watches the calls)."""


@dataclass(frozen=True)
class AttackConfig:
    """The training-time attack: radius, step and steps, in [0, 1] pixel units, the batch-norm
    mode of its forward passes (``train-no-update`` or ``eval``, module doc) and the threat
    model (``linf`` or ``l2``; give ``eps`` and ``step_size`` for L2)."""

    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    bn: str = DEFAULT_ATTACK_BN
    norm: str = "linf"

    def attack_fn(self, given: Attack | None) -> Attack:
        """``given``, else the PGD of :attr:`norm`."""
        return PGD_BY_NORM[self.norm] if given is None else given


@dataclass
class StepOutput:
    loss: torch.Tensor
    logits_clean: torch.Tensor | None
    logits_adv: torch.Tensor | None


def trades_step_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: AttackConfig,
    beta: float = 5.0,
    label_smoothing: float = 0.1,
    generator: torch.Generator | None = None,
    attack_model: nn.Module | None = None,
    attack_fn: Attack | None = None,
) -> StepOutput:
    """One TRADES step: KL-PGD from the detached clean prediction, then the TRADES loss.

    The clean prediction and the attack run in ``attack.bn``'s batch-norm mode; the loss's
    clean and adversarial forwards run in ``model``'s mode (as in the reference).

    ``attack_model`` (default ``model``) runs the attack: pass the unwrapped module when
    ``model`` is a DistributedDataParallel wrapper, so attack passes never touch DDP's hooks.
    ``attack_fn`` is the attack (default: the PGD of ``attack.norm``).
    """
    net = model if attack_model is None else attack_model
    with attack_bn_mode(net, attack.bn):
        with torch.no_grad():
            clean_probs = F.softmax(net(x).float(), 1)
        run = attack.attack_fn(attack_fn)
        x_adv = run(net, x, None, eps=attack.eps, step_size=attack.step_size,
                    steps=attack.steps, loss="kl", clean_probs=clean_probs, generator=generator)
    logits_clean = model(x)
    logits_adv = model(x_adv)
    loss = trades_objective(logits_clean, logits_adv, y, beta, label_smoothing)
    return StepOutput(loss, logits_clean, logits_adv)


def pgd_at_step_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: AttackConfig,
    beta: float = 0.0,
    label_smoothing: float = 0.1,
    generator: torch.Generator | None = None,
    attack_model: nn.Module | None = None,
    attack_fn: Attack | None = None,
) -> StepOutput:
    """One PGD-AT (Madry) step: CE-PGD in ``attack.bn``'s batch-norm mode, then label-smoothed
    CE on the adversarial batch."""
    net = model if attack_model is None else attack_model
    with attack_bn_mode(net, attack.bn):
        run = attack.attack_fn(attack_fn)
        x_adv = run(net, x, y, eps=attack.eps, step_size=attack.step_size,
                    steps=attack.steps, loss="ce", generator=generator)
    logits_adv = model(x_adv)
    loss = F.cross_entropy(logits_adv.float(), y, label_smoothing=label_smoothing)
    return StepOutput(loss, None, logits_adv)


def standard_step_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: AttackConfig,
    beta: float = 0.0,
    label_smoothing: float = 0.1,
    generator: torch.Generator | None = None,
    attack_model: nn.Module | None = None,
    attack_fn: Attack | None = None,
) -> StepOutput:
    """One standard (non-adversarial) step (no attack: ``attack_fn`` is never called)."""
    logits = model(x)
    return StepOutput(F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing),
                      logits, None)


LOSSES: dict[str, Callable[..., StepOutput]] = {
    "trades": trades_step_loss,
    "pgd-at": pgd_at_step_loss,
    "standard": standard_step_loss,
}
"""Training objectives by CLI name."""


def forward_passes_per_sample(loss: str, pgd_steps: int) -> float:
    """The papers' nominal cost of one training sample in forward-pass units (appendix B)."""
    if loss == "trades":
        return 2 * pgd_steps + 7
    if loss == "pgd-at":
        return 2 * pgd_steps + 3
    if loss == "standard":
        return 3.0
    raise ValueError(f"unknown loss {loss!r}")
