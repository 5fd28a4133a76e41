"""The TRADES objective (Zhang et al. 2019): CE(clean, y) + β · KL(p_clean ‖ p_adv).

Training minimises it (``advscale.training.losses``, with label smoothing); the robustness
evaluation reports it with β = 5 and no label smoothing as the papers' adversarial loss
(``advscale.attacks.robustness``). It lives here, below training, so both use one definition.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["mean", "sum", "none"]


def trades_objective(
    logits_clean: torch.Tensor,
    logits_adv: torch.Tensor,
    y: torch.Tensor,
    beta: float = 5.0,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """TRADES loss per image, or its batch mean (the papers' L) or sum, computed in fp32.

    Per image: ``CE(z_clean, y) + β · Σ_j p_clean,j (log p_clean,j − log p_adv,j)``; ``mean``
    is the training objective exactly as it was always computed (CE mean + β · batch-mean KL).
    """
    log_p_adv = F.log_softmax(logits_adv.float(), 1)
    p_clean = F.softmax(logits_clean.float(), 1)
    if reduction == "mean":
        ce = F.cross_entropy(logits_clean.float(), y, label_smoothing=label_smoothing)
        return ce + beta * F.kl_div(log_p_adv, p_clean, reduction="batchmean")
    ce = F.cross_entropy(logits_clean.float(), y, label_smoothing=label_smoothing,
                         reduction="none")
    per_image = ce + beta * F.kl_div(log_p_adv, p_clean, reduction="none").sum(1)
    if reduction == "none":
        return per_image
    if reduction == "sum":
        return per_image.sum()
    raise ValueError(f"unknown reduction {reduction!r}")
