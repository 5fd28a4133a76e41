"""Resumable training state: one ``DIR/state.safetensors`` file, written atomically.

Tensors: ``model.<key>`` (the trained, not averaged, weights and buffers), ``ema.<key>`` (the
averaged model), ``optim.<group param index>.<name>`` (optimizer state such as momentum
buffers) and ``rng.<name>`` (global torch RNG states, uint8). Metadata (strings):
``advscale_train_state`` (format version) and ``state``, a JSON object with the counters
(``step``, ``samples_seen``, ``position``, ``records_written``, ``wall_s``, the train-loss
accumulators, ``done``), the sampler, scheduler and EMA states and the optimizer's non-tensor
state (``param_groups``). Nothing is unpickled on load.

The file is written to a temporary name and renamed over the previous one only when complete,
so a crash or a full disk leaves the previous state intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advscale.core.stfile import load_tensors, save_tensors
from advscale.errors import AdvscaleError
from advscale.models.optim_state import load_optimizer_tensors, optimizer_tensors

STATE_VERSION = "1"
STATE_NAME = "state.safetensors"


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous()


def collect_state(
    model: nn.Module,
    ema_module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scalars: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Gather tensors and JSON scalars describing the training state (see module docs)."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = _cpu(v)
    for k, v in ema_module.state_dict().items():
        tensors[f"ema.{k}"] = _cpu(v)
    opt_tensors, opt_scalars, groups = optimizer_tensors(optimizer, "optim.")
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = dict(scalars)
    meta["optim_param_groups"] = groups
    meta["optim_scalars"] = opt_scalars
    return tensors, meta


def save_state(
    run_dir: str | os.PathLike[str],
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> Path:
    """Write ``run_dir/state.safetensors`` atomically. A failure (e.g. a full disk) raises
    AdvscaleError and leaves the previous state file untouched."""
    md = {"advscale_train_state": STATE_VERSION, "state": json.dumps(meta)}
    return save_tensors(Path(run_dir) / STATE_NAME, tensors, md, what="training checkpoint")


def read_state(run_dir: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``run_dir/state.safetensors``: (tensors on CPU, JSON scalars)."""
    path = Path(run_dir) / STATE_NAME
    tensors, md = load_tensors(path, what="readable training state", decode=False)
    if md.get("advscale_train_state") != STATE_VERSION:
        raise AdvscaleError(f"{path}: not an advscale training state (version "
                            f"{md.get('advscale_train_state')!r})")
    return tensors, json.loads(md["state"])


def restore_state(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    model: nn.Module,
    ema_module: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> None:
    """Load weights, EMA, optimizer and RNG states saved by :func:`collect_state` in place."""

    def part(prefix: str) -> dict[str, torch.Tensor]:
        n = len(prefix)
        return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix)}

    try:
        model.load_state_dict(part("model."))
        ema_module.load_state_dict(part("ema."))
    except RuntimeError as e:
        raise AdvscaleError(f"training state does not fit the model ({e})") from None
    load_optimizer_tensors(optimizer, tensors, meta.get("optim_scalars", {}),
                           meta["optim_param_groups"], "optim.")
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
