"""Numeric precision of the model's forward pass during an evaluation (``precision``).

* ``fp32`` (default): the model runs in float32, as RobustBench evaluates; the only precision
  whose numbers are leaderboard numbers.
* ``bf16``: every forward runs under ``torch.autocast`` with bfloat16 (CUDA, or CPU autocast);
  the logits are cast back to float32, so the attacks' losses and gradients stay float32.
* ``tf32``: float32 tensors, with TensorFloat-32 matmuls and convolutions allowed on CUDA
  (``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``) for the
  evaluation's duration. It has no effect on CPU (:func:`precision_note` says so on the record).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class AutocastForward(nn.Module):
    """``model`` whose forward runs under bf16 autocast on ``device_type``; float32 logits."""

    def __init__(self, model: nn.Module, device_type: str) -> None:
        super().__init__()
        self.model = model
        self.device_type = device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.model(x)
        return out.float()


def with_precision(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """The model as the attacks should call it under ``precision`` (bf16: autocast wrapper)."""
    if precision == "bf16":
        return AutocastForward(model, device.type).eval().requires_grad_(False)
    return model


def precision_note(precision: str, device: torch.device) -> str | None:
    """A note for the record when ``precision`` does not do what its name says on ``device``."""
    if precision == "tf32" and device.type != "cuda":
        return "tf32 has no effect on CPU: the evaluation ran in fp32"
    return None


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """Allow TF32 on CUDA for ``tf32`` while the evaluation runs; restore the flags after."""
    if precision != "tf32" or device.type != "cuda":
        yield
        return
    old: tuple[Any, Any] = (torch.backends.cuda.matmul.allow_tf32,
                            torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
