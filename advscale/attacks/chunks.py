"""Attacking one chunk of test images: the registered attack's runner, then the service's
per-image outcomes.

:func:`attack_chunk` looks the attack up in the registry (:mod:`advscale.attacks.registry`),
seeds the global RNG with the chunk seed (``seed + chunk``), runs the attack's chunk runner and
hands its predictions to :func:`advscale.attacks.robustness.image_outcomes`, which decides which
images are robust for every attack alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from advscale.attacks.registry import ChunkJob, get_attack
from advscale.attacks.robustness import image_outcomes
from advscale.attacks.settings import AttackSettings
from advscale.core.tensors import to_nchw


@dataclass
class ChunkResult:
    """Per-image outcome of one chunk (arrays over the chunk's images)."""

    chunk: int
    start: int
    stop: int
    pred_clean: np.ndarray
    pred_adv: np.ndarray
    robust: np.ndarray
    broken_by: list[str]
    x_adv: np.ndarray
    """float32 (k, H, W, 3) in [0, 1]: the adversarial image, or the clean one when the attack
    found none (AutoAttack) / the clean image was already misclassified."""
    per_attack_robust: dict[str, int]
    wall_s: float
    adv_loss_sum: float | None = None
    """PGD only: the sum over the chunk's images of the TRADES loss with β = 5 (the ``train.eval``
    ``adv_loss`` times images); None for AutoAttack."""

    @property
    def clean_correct(self) -> int:
        return int(self.per_attack_robust["clean"])

    @property
    def robust_correct(self) -> int:
        return int(self.robust.sum())


def attack_chunk(model: Any, images: np.ndarray, labels: np.ndarray, s: AttackSettings,
                 chunk: int, device: Any, *, verbose: bool = False,
                 progress: Callable[[str, int, int, int, int], None] | None = None
                 ) -> ChunkResult:
    """Attack one chunk of uint8 (k, H, W, 3) images with resolved settings ``s``.

    ``progress`` is called by attacks with stages (AutoAttack; :class:`ChunkJob`).
    """
    start, stop = s.chunk_bounds(chunk)
    seed = s.chunk_seed(chunk)
    t0 = time.perf_counter()
    x = to_nchw(np.ascontiguousarray(images), device=device)
    y = torch.from_numpy(labels).to(device).long()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    spec = get_attack(s.attack)
    raw = spec.runner(ChunkJob(model, x, y, s, start, seed, device, verbose, progress))
    o = image_outcomes(labels, raw.pred_clean, raw.pred_adv, raw.stages or [s.attack],
                       raw.broken_stage)
    # a clean-misclassified image needs no attack: keep it as it was
    keep = torch.from_numpy(o.keep_clean).to(x.device)
    x_adv = torch.where(keep[:, None, None, None], x, raw.x_adv.to(x.device, x.dtype))
    x_np = x_adv.permute(0, 2, 3, 1).contiguous().cpu().numpy().astype(np.float32)
    return ChunkResult(chunk, start, stop, np.asarray(raw.pred_clean, np.int64), o.pred_adv,
                       o.robust, o.broken_by, x_np, o.per_attack,
                       round(time.perf_counter() - t0, 3), raw.adv_loss_sum)
