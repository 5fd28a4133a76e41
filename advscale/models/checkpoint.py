"""Model checkpoints that load without unpickling code (owned by the model layer).

A model checkpoint is a ``.safetensors`` file: tensors ``model.<param>`` (the weights to
evaluate, i.e. the EMA weights for a trained run) and metadata describing how to rebuild the
model (``advscale_checkpoint`` = format version, ``model``, ``activation``, ``num_classes``,
``run_id``, ``samples_seen``, ``padding`` for WRNs, ...). The training state needed to resume
(optimiser, EMA, scheduler, sampler, RNG) lives beside it; see :mod:`advscale.training.state`.

Format versions: ``2`` records a WRN's stride-2 ``padding`` (``dm`` or ``symmetric``,
:mod:`advscale.models.wrn`); ``1`` predates it, and its WRNs were padded ``symmetric``, which is
how they load (the returned metadata says ``padding: symmetric``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advscale.core.fileio import file_sha256
from advscale.core.stfile import load_tensors, read_metadata, save_tensors
from advscale.errors import AdvscaleError
from advscale.models.registry import create_model, is_model
from advscale.models.wrn import WideResNet

CHECKPOINT_VERSION = "2"
LEGACY_PADDING = "symmetric"
"""The stride-2 padding of WRN checkpoints that do not record one (format ``1``)."""
MODEL_PREFIX = "model."
LAST_NAME = "last.safetensors"
"""File name of a run directory's latest evaluation checkpoint."""


def save_model_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any]
) -> Path:
    """Write ``model``'s state (parameters and buffers) with metadata, atomically.

    A WRN's ``padding`` is recorded from the model (a ``meta["padding"]`` must agree with it).
    """
    meta = dict(meta)
    if isinstance(model, WideResNet):
        if meta.setdefault("padding", model.padding) != model.padding:
            raise ValueError(f"metadata padding {meta['padding']!r} but the model is padded "
                             f"{model.padding!r}")
    tensors = {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    return save_tensors(path, tensors, {"advscale_checkpoint": CHECKPOINT_VERSION, **meta},
                        what="model checkpoint")


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file from a file path or a run directory (its ``last.safetensors``)."""
    p = Path(path)
    if p.is_dir():
        for cand in (p / LAST_NAME, p / "checkpoints" / LAST_NAME):
            if cand.is_file():
                return cand
        raise AdvscaleError(f"{p}: run directory has no {LAST_NAME}")
    if not p.is_file():
        raise AdvscaleError(f"{p}: no such checkpoint")
    return p


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an advscale checkpoint (JSON values decoded)."""
    p = resolve_checkpoint(path)
    md = read_metadata(p, what="safetensors checkpoint")
    if "advscale_checkpoint" not in md:
        raise AdvscaleError(f"{p}: not an advscale checkpoint (no advscale metadata)")
    version = md["advscale_checkpoint"] = str(md["advscale_checkpoint"])
    if not version.isdigit() or int(version) > int(CHECKPOINT_VERSION):
        raise AdvscaleError(f"{p}: checkpoint format {version!r} is newer than this advscale "
                            f"reads ({CHECKPOINT_VERSION}); upgrade advscale")
    if "model" in md and is_model(str(md["model"])) and md.get("padding") is None:
        md["padding"] = LEGACY_PADDING
    return md


def load_for_eval(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (file or run dir) in eval mode, fp32, on ``device``.

    Returns ``(model, meta)``; ``meta`` has the checkpoint metadata (with a WRN's ``padding``,
    ``symmetric`` for format 1) plus ``checkpoint_path`` and ``checkpoint_sha256``.
    """
    p = resolve_checkpoint(path)
    meta = read_checkpoint_metadata(p)
    kwargs: dict[str, Any] = {"activation": str(meta.get("activation", "silu"))}
    if meta.get("padding") is not None:
        kwargs["padding"] = str(meta["padding"])
    model = create_model(str(meta["model"]), num_classes=int(meta.get("num_classes", 10)),
                         **kwargs)
    state, _ = load_tensors(p, what="safetensors checkpoint")
    state = {k[len(MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise AdvscaleError(f"{p}: weights do not fit model {meta['model']!r} ({e})") from None
    model = model.to(device=device, dtype=torch.float32).eval()
    meta["checkpoint_path"] = str(p)
    meta["checkpoint_sha256"] = file_sha256(p)
    return model, meta
