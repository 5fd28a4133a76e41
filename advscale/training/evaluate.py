"""The in-training evaluation (``train.eval`` records), shared out over DDP ranks.

The evaluation itself is the one robustness service of :mod:`advscale.attacks.robustness`
(clean pass, 40-step PGD (L∞, or L2 with ``norm="l2"``) on the reference's clamped CW loss, or
``loss``, at ε = 8/255, step 2/255, from the seeded per-image random start; robust accuracy and
the TRADES loss with β = 5),
the same one ``advscale attack --attack pgd-cw`` runs. This wrapper only shares the batches out
among ranks and all-reduces the sums: the random start of image ``i`` depends on ``(seed, i)``
alone, so the numbers do not depend on the batch size or the number of ranks (up to float
summation order).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from advscale.attacks.pgd import AttackLoss
from advscale.attacks.robustness import RobustnessResult, robustness_sums
from advscale.training.ddp import DistInfo, all_reduce_sum


def evaluate_robustness(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    eps: float = 8 / 255,
    step_size: float = 2 / 255,
    steps: int = 40,
    batch_size: int = 256,
    seed: int = 0,
    loss: AttackLoss = "cw",
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    dist: DistInfo | None = None,
    norm: str = "linf",
) -> RobustnessResult:
    """Evaluate ``model`` (put in eval mode) on uint8 NHWC ``images`` with int ``labels``.

    With ``dist`` the batches are shared out among ranks and the sums all-reduced; every rank
    returns the same result.
    """
    dist = dist or DistInfo()
    n_batches = -(-len(images) // batch_size)
    sums = robustness_sums(model, images, labels, eps=eps, step_size=step_size, steps=steps,
                           batch_size=batch_size, seed=seed, loss=loss, device=device,
                           channels_last=channels_last,
                           batches=range(dist.rank, n_batches, dist.world_size), norm=norm)
    all_reduce_sum(sums, dist)
    return RobustnessResult.from_sums(sums)
