"""Counting FLOPs of models and of adversarial-training steps, on the meta device.

Counts come from ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-accumulate,
matmuls and convolutions) running advscale's real forward pass and real training step
(``advscale.training.losses``) on ``meta`` tensors: no memory, no arithmetic, seconds even for
WRN-94-16. Elementwise ops (BN, activations) are not counted, as in the papers.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

COUNTING_CONVENTION = (
    "torch.utils.flop_counter.FlopCounterMode on the meta device; 2 FLOPs per multiply-"
    "accumulate; matmul/convolution only (norms, activations, elementwise not counted); "
    "attack backward passes take input gradients only"
)


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one model under one training recipe (per 32×32 image / training sample)."""

    model: str
    params: int
    loss: str
    pgd_steps: int
    forward_flops_per_image: float
    train_flops_per_sample: float

    @property
    def forward_multiple(self) -> float:
        """Training cost per sample in forward passes (27 for TRADES-10, 3 for standard)."""
        return self.train_flops_per_sample / self.forward_flops_per_image

    @property
    def flops_per_param_sample(self) -> float:
        """The model's own constant C in FLOPs ≈ C·N·D (the paper's approximation is 7822)."""
        return self.train_flops_per_sample / self.params

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["forward_multiple"] = self.forward_multiple
        d["flops_per_param_sample"] = self.flops_per_param_sample
        return d


@functools.lru_cache(maxsize=256)
def count_training_flops(
    model: str,
    loss: str = "trades",
    pgd_steps: int = 10,
    activation: str = "silu",
    num_classes: int = 10,
    image_size: int = 32,
    batch_size: int = 2,
) -> FlopCount:
    """Count forward FLOPs per image and training FLOPs per sample for a model name/recipe."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from advscale.models import count_parameters, create_model
    from advscale.training.losses import LOSSES, AttackConfig

    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {sorted(LOSSES)}")
    kwargs = {"activation": activation} if model.startswith("wrn") else {}
    with torch.device("meta"):
        net = create_model(model, num_classes=num_classes, **kwargs)
        x = torch.rand(batch_size, 3, image_size, image_size)
        y = torch.zeros(batch_size, dtype=torch.long)
        net.eval()
        with FlopCounterMode(display=False) as fc:
            net(x)
        fwd = fc.get_total_flops() / batch_size
        net.train()
        step = LOSSES[loss]
        with FlopCounterMode(display=False) as fc:
            out = step(net, x, y, AttackConfig(steps=pgd_steps))
            out.loss.backward()
        train = fc.get_total_flops() / batch_size
    return FlopCount(
        model=model,
        params=count_parameters(net),
        loss=loss,
        pgd_steps=pgd_steps if loss != "standard" else 0,
        forward_flops_per_image=float(fwd),
        train_flops_per_sample=float(train),
    )
