"""Attacking one chunk of test images: advscale's PGD or AutoAttack, per-image outcomes.

PGD chunks go through the one evaluation service, :func:`advscale.attacks.robustness.attack_batch`,
with the evaluation's ``seed`` and each image's test row as its index: a PGD chunk's outcome is
the same whatever ``batch_size`` and ``chunk_size``. AutoAttack chunks reseed the global RNG with
the chunk seed (``seed + chunk``) and give AutoAttack that seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from advscale.attacks.autoattack import AutoAttackRunner
from advscale.attacks.robustness import attack_batch
from advscale.attacks.settings import PGD_ATTACKS, AttackSettings
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


@dataclass
class _Outcome:
    pred_clean: np.ndarray
    pred_adv: np.ndarray
    robust: np.ndarray
    broken_by: list[str]
    per_attack: dict[str, int]
    x_adv: torch.Tensor
    adv_loss_sum: float | None = None


def _pgd_chunk(model: Any, x: torch.Tensor, y: torch.Tensor, labels: np.ndarray,
               s: AttackSettings, start: int) -> _Outcome:
    """PGD over the chunk's batches; image ``j`` of the chunk is test row ``start + j``."""
    pc, pa, xs, loss_sum = [], [], [], 0.0
    for i in range(0, len(x), s.batch_size):
        out = attack_batch(model, x[i:i + s.batch_size], y[i:i + s.batch_size], index=start + i,
                           seed=s.seed, loss=PGD_ATTACKS[s.attack], eps=s.eps,  # type: ignore[arg-type]
                           step_size=float(s.step_size), steps=int(s.steps))
        pc.append(out.logits_clean.argmax(1))
        pa.append(out.logits_adv.argmax(1))
        xs.append(out.x_adv)
        loss_sum += float(out.adv_loss.double().sum())
    pred_clean = torch.cat(pc).cpu().numpy().astype(np.int64)
    pred_adv = torch.cat(pa).cpu().numpy().astype(np.int64)
    clean_ok = pred_clean == labels
    robust = clean_ok & (pred_adv == labels)
    # a clean-misclassified image needs no attack: keep it and its prediction as they were
    keep = torch.from_numpy(~clean_ok).to(x.device)
    x_adv = torch.where(keep[:, None, None, None], x, torch.cat(xs))
    pred_adv = np.where(clean_ok, pred_adv, pred_clean)
    broken_by = ["clean" if not c else ("" if r else s.attack)
                 for c, r in zip(clean_ok, robust, strict=True)]
    per_attack = {"clean": int(clean_ok.sum()), s.attack: int(robust.sum())}
    return _Outcome(pred_clean, pred_adv, robust, broken_by, per_attack, x_adv, loss_sum)


def _autoattack_chunk(model: Any, x: torch.Tensor, y: torch.Tensor, s: AttackSettings,
                      seed: int, device: Any, verbose: bool) -> _Outcome:
    runner = AutoAttackRunner(model, s.attack, eps=s.eps, seed=seed, device=device,
                              n_iter=s.steps if s.attack == "apgd-ce" else None, verbose=verbose)
    res = runner.run(x, y, batch_size=s.batch_size)
    return _Outcome(res.pred_clean, res.pred_adv, res.robust, list(res.broken_by),
                    dict(res.per_attack_robust), res.x_adv)


def attack_chunk(model: Any, images: np.ndarray, labels: np.ndarray, s: AttackSettings,
                 chunk: int, device: Any, *, verbose: bool = False) -> ChunkResult:
    """Attack one chunk of uint8 (k, H, W, 3) images with resolved settings ``s``."""
    start, stop = s.chunk_bounds(chunk)
    seed = s.chunk_seed(chunk)
    t0 = time.perf_counter()
    x = to_nchw(np.ascontiguousarray(images), device=device)
    y = torch.from_numpy(labels).to(device).long()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if s.attack in PGD_ATTACKS:
        o = _pgd_chunk(model, x, y, labels, s, start)
    else:
        o = _autoattack_chunk(model, x, y, s, seed, device, verbose)
    x_np = o.x_adv.permute(0, 2, 3, 1).contiguous().cpu().numpy().astype(np.float32)
    return ChunkResult(chunk, start, stop, o.pred_clean, o.pred_adv, np.asarray(o.robust, bool),
                       list(o.broken_by), x_np, dict(o.per_attack),
                       round(time.perf_counter() - t0, 3), o.adv_loss_sum)
