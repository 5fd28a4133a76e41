"""The one robustness evaluation: clean pass → PGD (L∞ or L2) → accuracies and adversarial loss;
and the one rule that decides which images are robust, for every attack.

Every evaluation in advscale that runs PGD goes through :func:`attack_batch`: the ``train.eval``
records of ``advscale train`` (:func:`robustness_sums`, sharded over DDP ranks by
``advscale.training.evaluate``) and ``advscale attack --attack pgd-cw|pgd-cw-margin|pgd-ce``
(:mod:`advscale.attacks.chunks`). The default is the reference's PGD-40 (Bartoldson et al.;
Gowal et al.'s ``Linf_PGD_40``): 40 steps of 2/255 at ε = 8/255 maximising the clamped CW loss
``-clamp(z_y - max_{j≠y} z_j, min=0)`` (:func:`advscale.attacks.pgd.cw_loss`), model in eval
mode; ``loss="cw-margin"`` maximises the unclamped margin instead. Given the same model,
images, ``eps``, steps, step size and seed, both give the same numbers whatever their batching,
chunking or sharding.

**The seeding rule.** The random start of the image at global index ``i`` (its row among the
evaluated images, 0-based) depends on ``(seed, i)`` only::

    u32   = little-endian uint32 of the first 4 bytes of sha256(f"{seed}:{i}".encode())
    u     = torch.rand((C, H, W), generator=torch.Generator("cpu").manual_seed(u32))  # float32
    delta = (2 * u - 1) * eps            # then clipped so that x + delta stays in [0, 1]

drawn on the CPU (so a CUDA run starts where a CPU run does) and moved to the images' device.
Under L2 the same per-image generator draws ``g = torch.randn((C, H, W))`` and then
``u = torch.rand((1,))`` (float32), and the start is ``eps · u^(1/d) · g / ‖g‖₂``
(:func:`advscale.attacks.pgd.l2_ball_start`, rule :data:`L2_START_RULE`).
Nothing else in the evaluation is random.

**Outcomes.** :func:`image_outcomes` decides for every attack (PGD, AutoAttack, a registered one)
from the predictions the attack returns. An image is *robust* when it is classified correctly both
clean and after the attack (RobustBench's convention, so robust ≤ clean). The adversarial loss is
the TRADES loss with β = 5 and no label smoothing, per image ``CE(z_clean, y) + 5 · KL(p_clean ‖
p_adv)`` at the attack's last iterate; reported as a mean over images (the papers' scaling-law
target). The reference counts an image as robust when its attacked prediction is correct, whatever
its clean one; the two agree except on a clean-misclassified image whose random start is classified
correctly and that the attack then fails to push back.

Units: images are float (B, C, H, W) in [0, 1]; ``eps`` and ``step_size`` in [0, 1] pixel units.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from advscale.attacks.norms import START_RULES
from advscale.attacks.pgd import AttackLoss, l2_ball_start, pgd
from advscale.attacks.trades import trades_objective
from advscale.core.tensors import to_nchw

ADV_LOSS_BETA = 5.0
"""β of the reported adversarial loss (the scaling-law target), whatever β training used."""

START_RULE = START_RULES["linf"]
"""Name of the seeding rule above (hashed into ``advscale attack``'s settings keys)."""
L2_START_RULE = START_RULES["l2"]
"""Name of the L2 start rule (module doc)."""


def start_seed(seed: int, index: int) -> int:
    """The 32-bit generator seed of the random start of image ``index`` (module doc)."""
    digest = hashlib.sha256(f"{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def start_noise(seed: int, start: int, count: int, image_shape: tuple[int, ...], *,
                device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform [0, 1) noise (count, *image_shape) for images ``start .. start + count - 1``."""
    gen = torch.Generator()
    out = torch.empty((count, *image_shape), dtype=torch.float32)
    for j in range(count):
        gen.manual_seed(start_seed(seed, start + j))
        out[j] = torch.rand(tuple(image_shape), generator=gen)
    return out.to(device=device, dtype=dtype)


def start_delta(norm: str, seed: int, start: int, count: int, image_shape: tuple[int, ...],
                eps: float, *, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The start perturbation of images ``start .. start + count - 1`` (module doc).

    L∞: the uniform draws of :func:`start_noise` (``pgd_linf``'s ``noise``; it scales them);
    L2: the point of the ball itself (``pgd_l2``'s ``noise``).
    """
    if norm == "linf":
        return start_noise(seed, start, count, image_shape, device=device, dtype=dtype)
    gen = torch.Generator()
    g = torch.empty((count, *image_shape), dtype=torch.float32)
    u = torch.empty((count,), dtype=torch.float32)
    for j in range(count):
        gen.manual_seed(start_seed(seed, start + j))
        g[j] = torch.randn(tuple(image_shape), generator=gen)
        u[j] = torch.rand((1,), generator=gen)[0]
    return l2_ball_start(g, u, eps).to(device=device, dtype=dtype)


def robust_mask(y: Any, pred_clean: Any, pred_adv: Any) -> Any:
    """The one robustness rule: correct clean *and* correct attacked (numpy or torch)."""
    return (pred_clean == y) & (pred_adv == y)


@dataclass
class ImageOutcomes:
    """Per-image outcomes of one attacked chunk, decided by :func:`image_outcomes`."""

    robust: np.ndarray
    """bool (k,)."""
    pred_adv: np.ndarray
    """int64 (k,): the attacked prediction; the clean one for a clean-misclassified image."""
    broken_by: list[str]
    """``"clean"`` (misclassified unattacked), the stage that fooled it, or ``""`` (robust)."""
    per_attack: dict[str, int]
    """Robust images after each stage, in order, starting with ``clean``."""
    keep_clean: np.ndarray
    """bool (k,): images whose clean version stands as their adversarial one (misclassified
    clean, so never attacked)."""


def image_outcomes(labels: np.ndarray, pred_clean: np.ndarray, pred_adv: np.ndarray,
                   stages: list[str], broken_stage: list[str] | None = None) -> ImageOutcomes:
    """Robustness of each image from an attack's predictions (the service's decision).

    ``stages``: the attack's stages in order (one for PGD); ``broken_stage``: per image the
    stage that fooled it (an ensemble's cascade; None: the last stage). An image counts as
    robust after stage j when it is clean-correct and not fooled by stages ≤ j; the final
    robustness is :func:`robust_mask`.
    """
    labels = np.asarray(labels, np.int64)
    pred_clean = np.asarray(pred_clean, np.int64)
    clean_ok = pred_clean == labels
    pred_adv = np.where(clean_ok, np.asarray(pred_adv, np.int64), pred_clean)
    robust = np.asarray(robust_mask(labels, pred_clean, pred_adv), bool)
    last = stages[-1]
    fooled_at = [("" if r else (broken_stage[i] if broken_stage and broken_stage[i] else last))
                 for i, r in enumerate(robust)]
    broken_by = ["clean" if not c else f for c, f in zip(clean_ok, fooled_at, strict=True)]
    per_attack = {"clean": int(clean_ok.sum())}
    fooled: set[int] = set()
    for stage in stages:
        fooled |= {i for i, b in enumerate(broken_by) if b == stage}
        per_attack[stage] = int(sum(1 for i in np.flatnonzero(clean_ok) if i not in fooled))
    return ImageOutcomes(robust, pred_adv, broken_by, per_attack, ~clean_ok)


@dataclass
class BatchOutcome:
    """The evaluation of one batch: fp32 logits, the attacked images and per-image losses."""

    y: torch.Tensor
    logits_clean: torch.Tensor
    logits_adv: torch.Tensor
    x_adv: torch.Tensor
    """PGD's last iterate for every image (also for clean-misclassified ones)."""
    adv_loss: torch.Tensor
    """Per-image TRADES loss with β = :data:`ADV_LOSS_BETA` (fp32)."""

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.logits_clean.argmax(1) == self.y

    @property
    def robust(self) -> torch.Tensor:
        """Correct both clean and attacked (:func:`robust_mask`)."""
        return robust_mask(self.y, self.logits_clean.argmax(1), self.logits_adv.argmax(1))

    def sums(self) -> torch.Tensor:
        """float64 ``[images, clean correct, robust, adversarial-loss sum]``."""
        return torch.stack([
            torch.tensor(float(len(self.y)), dtype=torch.float64, device=self.y.device),
            self.clean_correct.sum().double(),
            self.robust.sum().double(),
            self.adv_loss.double().sum(),
        ])


def attack_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, index: int,
                 seed: int = 0, loss: AttackLoss = "cw", eps: float = 8 / 255,
                 step_size: float = 2 / 255, steps: int = 40, norm: str = "linf"
                 ) -> BatchOutcome:
    """Evaluate images ``index .. index + len(x) - 1`` of an evaluation with ``seed``.

    The papers' PGD-40 is ``loss="cw"`` (clamped CW), ``steps=40, step_size=2/255`` at
    ``eps=8/255`` from the seeded uniform start (module doc), no restarts. ``norm="l2"`` runs
    L2 PGD from the seeded L2 start. The caller puts the model in eval mode.
    """
    with torch.no_grad():
        logits_clean = model(x).float()
    noise = start_delta(norm, seed, index, len(x), tuple(x.shape[1:]), eps, device=x.device,
                        dtype=x.dtype)
    x_adv = pgd(model, x, y, norm=norm, eps=eps, step_size=step_size, steps=steps, loss=loss,
                noise=noise)
    with torch.no_grad():
        logits_adv = model(x_adv).float()
        adv_loss = trades_objective(logits_clean, logits_adv, y, ADV_LOSS_BETA, 0.0,
                                    reduction="none")
    return BatchOutcome(y, logits_clean, logits_adv, x_adv, adv_loss)


@dataclass(frozen=True)
class RobustnessResult:
    """Clean accuracy, robust accuracy (fractions) and mean adversarial loss over ``n`` images."""

    n: int
    clean_acc: float
    robust_acc: float
    adv_loss: float

    @classmethod
    def from_sums(cls, sums: torch.Tensor) -> RobustnessResult:
        """From :meth:`BatchOutcome.sums` added over batches (and ranks)."""
        n, clean, robust, loss = (float(v) for v in sums.tolist())
        d = max(n, 1.0)
        return cls(int(n), clean / d, robust / d, loss / d)


def robustness_sums(
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
    batches: Iterable[int] | None = None,
    norm: str = "linf",
) -> torch.Tensor:
    """:meth:`BatchOutcome.sums` over ``batches`` (default all) of uint8 NHWC ``images``.

    Batch ``b`` holds images ``[b · batch_size, (b + 1) · batch_size)``; a DDP wrapper passes
    each rank its own batches and all-reduces the sums. The model is put in eval mode for the
    duration.
    """
    device = torch.device(device)
    n_batches = -(-len(images) // batch_size)
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        for b in (range(n_batches) if batches is None else batches):
            lo, hi = b * batch_size, min(len(images), (b + 1) * batch_size)
            x = to_nchw(images[lo:hi], device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(np.asarray(labels[lo:hi], dtype=np.int64)).to(device)
            out = attack_batch(model, x, y, index=lo, seed=seed, loss=loss, eps=eps,
                               step_size=step_size, steps=steps, norm=norm)
            sums += out.sums()
    finally:
        model.train(was_training)
    return sums


def robustness_in_process(model: nn.Module, images: np.ndarray, labels: np.ndarray,
                          **kwargs: object) -> RobustnessResult:
    """The evaluation of all ``images`` in one process (keywords of :func:`robustness_sums`)."""
    return RobustnessResult.from_sums(robustness_sums(model, images, labels, **kwargs))
