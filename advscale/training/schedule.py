"""The one-cycle cosine learning-rate schedule (Smith & Topin 2017), as a pure function of step.

The learning rate rises from ``peak / start_div`` to ``peak`` over the first ``warmup`` fraction
of the optimizer steps along a half cosine, then falls along a half cosine to
``peak / (start_div · final_div)`` at the last step; this is torch's ``OneCycleLR`` with
``anneal_strategy="cos"``, the "cyclic" schedule of Wang et al. (2023) that Bartoldson et al.
follow. Being a function of the step alone, it needs no state beyond the step counter to resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class OneCycleCosine:
    """Learning rate (same units as ``peak``) at optimizer step ``step`` of ``total_steps``."""

    peak: float
    total_steps: int
    warmup: float = 0.25
    start_div: float = 25.0
    final_div: float = 1e4

    def __call__(self, step: int) -> float:
        """The learning rate to use for the update at 0-based ``step``."""
        total = max(1, int(self.total_steps))
        start = self.peak / self.start_div
        end = start / self.final_div
        up = self.warmup * total - 1  # the step at which the peak is reached
        last = total - 1
        step = min(max(int(step), 0), last)
        if up > 0 and step <= up:
            return _cos(start, self.peak, step / up)
        down = last - max(up, 0)
        if down <= 0:
            return self.peak
        return _cos(self.peak, end, (step - max(up, 0)) / down)

    def state_dict(self) -> dict[str, float]:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup": self.warmup,
                "start_div": self.start_div, "final_div": self.final_div}


def _cos(a: float, b: float, t: float) -> float:
    """Half-cosine interpolation from ``a`` (t = 0) to ``b`` (t = 1)."""
    return b + (a - b) * (1 + math.cos(math.pi * t)) / 2


def bn_momentum_at(step: int, momentum: float, schedule: str = "advscale") -> float:
    """Batch-norm momentum at 0-based ``step``: 1 on the first batch (its statistics replace the
    initial ones), then ``max(momentum, 9 / (10 + step))``, the EMA's warm-up decay
    ``(1 + t) / (10 + t)`` seen from the other side, so the statistics' horizon grows with the
    run like the averaged weights' and early, untrained-network statistics fade in short runs.
    ``schedule="reference"``: DM-Improves-AT's ``watrain.py`` — 1 at step 0, then ``momentum``.
    """
    if step == 0:
        return 1.0
    if schedule == "reference":
        return float(momentum)
    return max(float(momentum), 9.0 / (10.0 + step))


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The generator seed of optimizer step ``step`` on ``rank`` (63-bit, well mixed)."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9
         + int(rank) * 0x94D049BB133111EB + 0x2545F4914F6CDD1D) & ((1 << 64) - 1)
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & ((1 << 64) - 1)
    x ^= x >> 32
    return x & ((1 << 63) - 1)
