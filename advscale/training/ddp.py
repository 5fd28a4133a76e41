"""Distributed data parallel (DDP) plumbing for ``torchrun`` launches, and single-process runs.

``torchrun --nproc_per_node=K`` (one node or many) sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` joins the process group (NCCL on CUDA, gloo on CPU).
Every rank trains on its own slice of each global batch (the global batch is preserved), the
gradients are averaged by ``DistributedDataParallel``, and only rank 0 writes files and stdout.
Batch norm is synchronised across ranks on CUDA (``SyncBatchNorm``); torch implements no CPU
synchronised batch norm, so CPU ranks normalise over their local slice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from advscale.core.devices import resolve_device
from advscale.errors import AdvscaleError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_dist_info() -> DistInfo:
    """Rank, world size and local rank from torchrun's environment (defaults: one process)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` → this rank's CUDA device when there is one, else CPU (made current)."""
    dev = resolve_device(name, local_rank=info.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def init_distributed(device: torch.device, info: DistInfo) -> None:
    """Join the process group of a torchrun launch (no-op for a single process)."""

    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)


def shutdown_distributed() -> None:

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:

        dist.barrier()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``t`` over ranks, in place (identity for a single process)."""
    if info.distributed:

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. a run id or an error message)."""
    if not info.distributed:
        return obj

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if info.distributed:

        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def wrap_ddp(model: nn.Module, device: torch.device, info: DistInfo) -> nn.Module:
    """``model`` wrapped for gradient averaging (unchanged for a single process)."""
    if not info.distributed:
        return model

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


@torch.no_grad()
def check_in_sync(module: nn.Module, info: DistInfo) -> None:
    """Raise AdvscaleError if the ranks' parameters differ (a broken gradient average)."""
    if not info.distributed:
        return


    total = sum(p.detach().double().sum() for p in module.parameters())
    hi = torch.stack([total, -total]).to(next(module.parameters()).device)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if float(hi[0] + hi[1]) > 1e-9 * max(1.0, abs(float(hi[0]))):
        raise AdvscaleError("DDP ranks hold different weights; stopping (a rank diverged)")


def maybe_sync_bn(model: nn.Module, device: torch.device, info: DistInfo) -> nn.Module:
    """Convert batch norms to SyncBatchNorm for multi-rank CUDA runs."""
    if info.distributed and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model
