"""Optimizer state as flat tensors + JSON scalars (for safetensors files; nothing pickled).

Tensor entries are keyed ``{prefix}{param index}.{name}`` (e.g. ``optim.3.momentum_buffer``,
``adam.0.exp_avg``); non-tensor entries and the parameter groups go to JSON scalars.
"""

from __future__ import annotations

from typing import Any

import torch


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str = "optim."
                      ) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]],
                                 list[dict[str, Any]]]:
    """``(tensors on CPU, scalars by param index, param groups)`` of ``opt``'s state."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for name, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"{prefix}{idx}.{name}"] = val.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = val
    return tensors, scalars, [dict(g) for g in sd["param_groups"]]


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           scalars: dict[str, dict[str, Any]] | None = None,
                           param_groups: list[dict[str, Any]] | None = None,
                           prefix: str = "optim.") -> None:
    """Restore what :func:`optimizer_tensors` saved (``param_groups`` None: keep ``opt``'s)."""
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith(prefix):
            idx, name = k[len(prefix):].split(".", 1)
            if name == "step" and v.numel() == 1:
                v = v.reshape(())  # 1-element steps written by older denoiser states
            state.setdefault(int(idx), {})[name] = v
    for idx, d in (scalars or {}).items():
        state.setdefault(int(idx), {}).update(d)
    groups = param_groups if param_groups is not None else opt.state_dict()["param_groups"]
    opt.load_state_dict({"state": state, "param_groups": groups})
