"""One ``--device`` resolution for every command: auto, cpu, cuda, cuda:1, mps."""

from __future__ import annotations

import torch

from advscale.errors import AdvscaleError


def resolve_device(device: str | torch.device = "auto", local_rank: int | None = None
                   ) -> torch.device:
    """A checked torch device.

    ``auto`` → CUDA when a GPU is visible, else CPU. A bare ``cuda`` becomes ``cuda:LOCAL_RANK``
    when ``local_rank`` is given (one GPU per torchrun process). Unknown names, CUDA without a
    GPU and out-of-range GPU indices raise :class:`AdvscaleError` with one line.
    """
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = str(device).strip()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and local_rank is not None:
        name = f"cuda:{local_rank}"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise AdvscaleError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, "
                            "mps, auto)", field="device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise AdvscaleError(f"device {device}: no CUDA GPU is available here",
                                field="device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise AdvscaleError(f"device {device}: only {torch.cuda.device_count()} GPUs",
                                field="device")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps")
                                  and torch.backends.mps.is_available()):
        raise AdvscaleError(f"device {device}: MPS is not available here", field="device")
    return dev
