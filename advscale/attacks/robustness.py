"""The one robustness evaluation under L∞ PGD: clean pass → PGD → accuracies and adversarial loss.

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
Nothing else in the evaluation is random.

**Outcomes.** An image is *robust* when it is classified correctly both clean and after the
attack (RobustBench's convention, so robust ≤ clean). The adversarial loss is the TRADES loss with
β = 5 and no label smoothing, per image ``CE(z_clean, y) + 5 · KL(p_clean ‖ p_adv)`` at the
attack's last iterate; reported as a mean over images (the papers' scaling-law target). The
reference counts an image as robust when its attacked prediction is correct, whatever its clean
one; the two agree except on a clean-misclassified image whose random start is classified
correctly and that the attack then fails to push back.

Units: images are float (B, C, H, W) in [0, 1]; ``eps`` and ``step_size`` in [0, 1] pixel units.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advscale.attacks.pgd import AttackLoss, pgd_linf
from advscale.attacks.trades import trades_objective
from advscale.core.tensors import to_nchw

ADV_LOSS_BETA = 5.0
"""β of the reported adversarial loss (the scaling-law target), whatever β training used."""

START_RULE = "image-sha256-v1"
"""Name of the seeding rule above (hashed into ``advscale attack``'s settings keys)."""


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
        """Correct both clean and attacked."""
        return self.clean_correct & (self.logits_adv.argmax(1) == self.y)

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
                 step_size: float = 2 / 255, steps: int = 40) -> BatchOutcome:
    """Evaluate images ``index .. index + len(x) - 1`` of an evaluation with ``seed``.

    The papers' PGD-40 is ``loss="cw"`` (clamped CW), ``steps=40, step_size=2/255`` at
    ``eps=8/255`` from the seeded uniform start (module doc), no restarts. The caller puts the
    model in eval mode.
    """
    with torch.no_grad():
        logits_clean = model(x).float()
    noise = start_noise(seed, index, len(x), tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
    x_adv = pgd_linf(model, x, y, eps=eps, step_size=step_size, steps=steps, loss=loss,
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
                               step_size=step_size, steps=steps)
            sums += out.sums()
    finally:
        model.train(was_training)
    return sums


def evaluate_robustness(model: nn.Module, images: np.ndarray, labels: np.ndarray,
                        **kwargs: object) -> RobustnessResult:
    """The evaluation of all ``images`` in one process (keywords of :func:`robustness_sums`)."""
    return RobustnessResult.from_sums(robustness_sums(model, images, labels, **kwargs))
