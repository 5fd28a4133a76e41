"""The in-training evaluation: clean accuracy, PGD-CW accuracy and the TRADES loss of a model.

This is what the papers fit their scaling laws to (Bartoldson et al. 2024, section 3.1): on a
fixed test subset, a 40-step L∞ PGD on the CW margin loss (ε = 8/255, step 2/255, uniform random
start) attacks the model in eval mode; ``robust_acc`` is its accuracy on the attacked images and
``adv_loss`` the TRADES loss with β = 5 under that attack, CE(clean) + 5 · KL(p_clean ‖ p_adv),
without label smoothing. The random start of batch ``b`` uses a generator seeded by ``seed``
and ``b`` only, so the same weights always give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advscale.attacks.pgd import pgd_linf
from advscale.training.augment import to_model_input
from advscale.training.ddp import DistInfo, all_reduce_sum
from advscale.training.losses import trades_objective

ADV_LOSS_BETA = 5.0
"""β of the reported adversarial loss (the scaling-law target), whatever β training used."""


@dataclass(frozen=True)
class EvalResult:
    n: int
    clean_acc: float
    robust_acc: float
    adv_loss: float


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
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    dist: DistInfo | None = None,
) -> EvalResult:
    """Evaluate ``model`` (put in eval mode) on uint8 NHWC ``images`` with int ``labels``.

    With ``dist`` the batches are shared out among ranks and the sums all-reduced; every rank
    returns the same result.
    """
    dist = dist or DistInfo()
    device = torch.device(device)
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # n, clean, robust, loss
    n_batches = -(-len(images) // batch_size)
    try:
        for b in range(dist.rank, n_batches, dist.world_size):
            lo, hi = b * batch_size, min(len(images), (b + 1) * batch_size)
            x = to_model_input(torch.from_numpy(images[lo:hi]).to(device), channels_last)
            y = torch.from_numpy(labels[lo:hi].astype(np.int64)).to(device)
            gen = torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + b)
            with torch.no_grad():
                logits_clean = model(x).float()
            x_adv = pgd_linf(model, x, y, eps=eps, step_size=step_size, steps=steps, loss="cw",
                             generator=gen)
            with torch.no_grad():
                logits_adv = model(x_adv).float()
                k = hi - lo
                loss = trades_objective(logits_clean, logits_adv, y, ADV_LOSS_BETA, 0.0) * k
                sums += torch.stack([
                    torch.tensor(float(k), dtype=torch.float64, device=device),
                    (logits_clean.argmax(1) == y).sum().double(),
                    (logits_adv.argmax(1) == y).sum().double(),
                    loss.double(),
                ])
    finally:
        model.train(was_training)
    all_reduce_sum(sums, dist)
    n, clean, robust, loss = sums.tolist()
    n = max(n, 1.0)
    return EvalResult(int(n), clean / n, robust / n, loss / n)
