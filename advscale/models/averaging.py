"""Weight averaging: an exponential moving average (EMA) of the weights, the reported model.

One EMA for every trainer: adversarial training (:meth:`EMA.update`, the schedule below) and the
built-in denoiser (:meth:`EMA.blend` with EDM's half-life decay, computed by its trainer).

As in Gowal et al. (2020) and Wang et al. (2023): for the first ``warmup_steps`` optimizer
steps the average simply copies the weights; afterwards each step mixes with decay
``min(decay, (1 + t) / (10 + t))`` where ``t`` counts steps since the warm-up, so a short run
is not dominated by its random initialisation. Batch-norm running statistics (buffers) are
copied from the trained model, not averaged.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """An averaged copy of ``model``; call :meth:`update` after every optimizer step."""

    def __init__(self, model: nn.Module, decay: float = 0.995, warmup_steps: int = 0) -> None:
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.module.eval()
        self.decay = float(decay)
        self.warmup_steps = int(warmup_steps)
        self.updates = 0

    def current_decay(self, step: int) -> float:
        """The decay used at 1-based optimizer ``step`` (0 means: copy the weights)."""
        if step <= self.warmup_steps:
            return 0.0
        t = step - self.warmup_steps - 1
        return min(self.decay, (1.0 + t) / (10.0 + t))

    def update(self, model: nn.Module, step: int) -> None:
        """Average ``model``'s parameters in (after 1-based optimizer ``step``), copy buffers."""
        self.blend(model, self.current_decay(step))
        self.updates = int(step)

    @torch.no_grad()
    def blend(self, model: nn.Module, decay: float) -> None:
        """``ema ← decay·ema + (1 − decay)·model`` for parameters (0: copy); buffers copied."""
        ema_p = [p for p in self.module.parameters()]
        new_p = [p.detach() for p in model.parameters()]
        if decay == 0.0:
            torch._foreach_copy_(ema_p, new_p)
        else:
            torch._foreach_lerp_(ema_p, new_p, 1.0 - decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "decay": self.decay, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
