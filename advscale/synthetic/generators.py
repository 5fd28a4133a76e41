"""Build a generator by name: ``builtin-gaussian``, ``builtin-unet``, ``edm-export``, ``diffusers``.

Each returns an :class:`advscale.synthetic.base.DiffusionGenerator`.
"""

from __future__ import annotations

import os
from typing import Any

from advscale.errors import AdvscaleError

GENERATORS = ("builtin-gaussian", "builtin-unet", "edm-export", "diffusers")


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; anything else is passed through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AdvscaleError(f"--device {device}: no CUDA GPU is available")
    return device


def load_generator(
    kind: str,
    *,
    data: str | os.PathLike[str] | None = None,
    model: str | os.PathLike[str] | None = None,
    device: str = "auto",
    dtype: str = "fp32",
    components: int = 64,
    residual: str = "none",
    fit_per_class: int | None = None,
    prediction_type: str | None = None,
    compile: bool = False,
) -> Any:
    """Construct generator ``kind``.

    * ``builtin-gaussian`` needs ``data`` (training HDF5 to fit; ``components``, ``residual``,
      ``fit_per_class`` control the fit) or ``model`` (a fit saved by ``fit-gaussian``).
    * ``builtin-unet`` needs ``model`` (a ``train-denoiser`` checkpoint or run folder).
    * ``edm-export`` needs ``model`` (a ``.pt2`` from ``gen-synthetic export``).
    * ``diffusers`` needs ``model`` (a diffusers model folder) and ``prediction_type``.

    ``dtype`` (``fp32`` or ``bf16``) is the network's compute dtype; the sampler state is
    float64 regardless. ``compile`` wraps the network in ``torch.compile``.
    """
    dev = resolve_device(device)
    if dtype not in ("fp32", "bf16"):
        raise AdvscaleError(f"--dtype {dtype!r} must be fp32 or bf16")
    if kind == "builtin-gaussian":
        from advscale.synthetic.builtin_gaussian import GaussianGenerator, gaussian_from_file

        if model is not None:
            return GaussianGenerator.load(model, device=dev)
        if data is None:
            raise AdvscaleError("builtin-gaussian fits a Gaussian to your training data: "
                                "pass --data train.h5 (or --model FIT.safetensors)")
        return gaussian_from_file(data, components=components, residual=residual,
                                  max_per_class=fit_per_class, device=dev)
    if kind in ("builtin-unet", "edm-export", "diffusers") and model is None:
        raise AdvscaleError(f"{kind} needs --model PATH")
    if kind == "builtin-unet":
        from advscale.synthetic.builtin_unet import UNetGenerator

        return UNetGenerator.load(model, device=dev, dtype=dtype, compile=compile)
    if kind == "edm-export":
        from advscale.synthetic.edm_export import ExportedEDMGenerator

        return ExportedEDMGenerator.load(model, device=dev, dtype=dtype, compile=compile)
    if kind == "diffusers":
        from advscale.synthetic.diffusers_gen import DiffusersGenerator

        if prediction_type is None:
            raise AdvscaleError("diffusers models need --prediction-type epsilon|sample|"
                                "v_prediction (what the network was trained to output)")
        return DiffusersGenerator.load(model, prediction_type=prediction_type, device=dev,
                                       dtype=dtype, compile=compile)
    raise AdvscaleError(f"unknown generator {kind!r}; choose from {', '.join(GENERATORS)}")
