"""The generator registry: ``builtin-gaussian``, ``builtin-unet``, ``edm-export``, ``diffusers``.

Each loader is registered with :func:`register_generator` and returns an
:class:`advscale.synthetic.base.DiffusionGenerator`; :func:`load_generator` is a lookup.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from advscale.core.devices import resolve_device
from advscale.errors import AdvscaleError
from advscale.synthetic.builtin_gaussian import GaussianGenerator, gaussian_from_file
from advscale.synthetic.builtin_unet import UNetGenerator
from advscale.synthetic.diffusers_gen import DiffusersGenerator
from advscale.synthetic.edm_export import ExportedEDMGenerator


@dataclass(frozen=True)
class GeneratorOptions:
    """Everything a loader may use (each uses what it needs; see :func:`load_generator`)."""

    device: torch.device
    data: str | os.PathLike[str] | None = None
    model: str | os.PathLike[str] | None = None
    dtype: str = "fp32"
    components: int = 64
    residual: str = "none"
    fit_per_class: int | None = None
    prediction_type: str | None = None
    compile: bool = False


Loader = Callable[[GeneratorOptions], Any]
_LOADERS: dict[str, Loader] = {}


def register_generator(name: str, needs_model: bool = True) -> Callable[[Loader], Loader]:
    """Decorator: register a loader under ``name`` (``needs_model``: ``--model`` is required)."""

    def deco(fn: Loader) -> Loader:
        def checked(opts: GeneratorOptions) -> Any:
            if needs_model and opts.model is None:
                raise AdvscaleError(f"{name} needs model PATH", field="model")
            return fn(opts)

        checked.__doc__ = fn.__doc__
        _LOADERS[name] = checked
        return fn

    return deco


def list_generators() -> list[str]:
    """The registered generator names."""
    return list(_LOADERS)


@register_generator("builtin-gaussian", needs_model=False)
def _gaussian(o: GeneratorOptions) -> Any:
    """Fit per-class Gaussians to ``data`` (or load a saved fit from ``model``)."""

    if o.model is not None:
        return GaussianGenerator.load(o.model, device=o.device)
    if o.data is None:
        raise AdvscaleError("builtin-gaussian fits a Gaussian to your training data: "
                            "pass data train.h5 (or model FIT.safetensors)", field="data,model")
    return gaussian_from_file(o.data, components=o.components, residual=o.residual,
                              max_per_class=o.fit_per_class, device=o.device)


@register_generator("builtin-unet")
def _unet(o: GeneratorOptions) -> Any:
    """A ``train-denoiser`` checkpoint or run folder."""

    return UNetGenerator.load(o.model, device=o.device, dtype=o.dtype, compile=o.compile)


@register_generator("edm-export")
def _edm_export(o: GeneratorOptions) -> Any:
    """A ``.pt2`` written by ``gen-synthetic export``."""

    return ExportedEDMGenerator.load(o.model, device=o.device, dtype=o.dtype, compile=o.compile)


@register_generator("diffusers")
def _diffusers(o: GeneratorOptions) -> Any:
    """A diffusers model folder; ``prediction_type`` says what the network outputs."""

    if o.prediction_type is None:
        raise AdvscaleError("diffusers models need prediction_type epsilon|sample|"
                            "v_prediction (what the network was trained to output)",
                            field="prediction_type")
    return DiffusersGenerator.load(o.model, prediction_type=o.prediction_type, device=o.device,
                                   dtype=o.dtype, compile=o.compile)


GENERATORS = tuple(_LOADERS)


def load_generator(kind: str, *, device: str = "auto", **options: Any) -> Any:
    """Construct generator ``kind`` (a name from :func:`list_generators`).

    * ``builtin-gaussian`` needs ``data`` (training HDF5 to fit; ``components``, ``residual``,
      ``fit_per_class`` control the fit) or ``model`` (a fit saved by ``fit-gaussian``).
    * ``builtin-unet`` needs ``model`` (a ``train-denoiser`` checkpoint or run folder).
    * ``edm-export`` needs ``model`` (a ``.pt2`` from ``gen-synthetic export``).
    * ``diffusers`` needs ``model`` (a diffusers model folder) and ``prediction_type``.

    ``dtype`` (``fp32`` or ``bf16``) is the network's compute dtype; the sampler state is
    float64 regardless. ``compile`` wraps the network in ``torch.compile``.
    """
    if kind not in _LOADERS:
        raise AdvscaleError(f"unknown generator {kind!r}; choose from {', '.join(_LOADERS)}")
    opts = GeneratorOptions(device=resolve_device(device), **options)
    if opts.dtype not in ("fp32", "bf16"):
        raise AdvscaleError(f"dtype {opts.dtype!r} must be fp32 or bf16", field="dtype")
    return _LOADERS[kind](opts)
