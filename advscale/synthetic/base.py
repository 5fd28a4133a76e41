"""The one interface every generator implements: prior, denoiser, step rule, FLOPs, attributes.

A generator is an EDM-style denoiser ``D(x; sigma, label)`` on ``[-1, 1]`` images plus the
facts the sampler and the output file need. ``advscale.synthetic.jobs.generate`` drives any of
them with the sampler in :mod:`advscale.synthetic.edm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from advscale.synthetic.edm import SIGMA_DATA, SIGMA_MAX, SIGMA_MIN, SamplerConfig, per_image_normal


class DiffusionGenerator:
    """Base class of generators (subclasses set the attributes and implement :meth:`denoise`).

    Attributes:
        name: generator kind (``builtin-gaussian``, ``builtin-unet``, ``edm-export``,
            ``diffusers``).
        class_names: label names; labels are ``0 .. len(class_names) - 1``.
        image_shape: ``(C, H, W)`` of generated images.
        sigma_min, sigma_max: the noise range the denoiser supports (EDM defaults).
        sigma_data: data standard deviation assumed by the preconditioning (0.5).
        flops_per_call: FLOPs per image of one denoiser evaluation (2 per multiply-add).
        is_trained_diffusion_model: False for the analytic built-in Gaussian.
        device: where :meth:`denoise` runs.
    """

    name = "abstract"
    class_names: Sequence[str] = ()
    image_shape: tuple[int, int, int] = (3, 32, 32)
    sigma_min = SIGMA_MIN
    sigma_max = SIGMA_MAX
    sigma_data = SIGMA_DATA
    flops_per_call = 0.0
    is_trained_diffusion_model = True
    device: torch.device = torch.device("cpu")
    dtype_name = "float32"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def prior(self, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Unit-normal latents, one per image from its own generator (scaled by sigma_max later)."""
        return per_image_normal(generators, self.image_shape, self.device)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``D(x; sigma)`` for float64 ``x`` (B, C, H, W), ``sigma`` (B,), int64 ``labels``."""
        raise NotImplementedError

    def sampler_config(self, steps: int, **overrides: Any) -> SamplerConfig:
        """The step rule: EDM schedule over this generator's sigma range, Heun by default."""
        kw: dict[str, Any] = {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return SamplerConfig(steps=steps, **kw)

    def fingerprint(self) -> str:
        """A string that changes whenever the denoiser would (weights hash, fitted stats)."""
        raise NotImplementedError

    def attrs(self) -> dict[str, Any]:
        """Provenance for the output file's attributes and the job record."""
        return {
            "generator": self.name,
            "generator_fingerprint": self.fingerprint(),
            "is_trained_diffusion_model": bool(self.is_trained_diffusion_model),
            "flops_per_denoiser_call": float(self.flops_per_call),
            "network_dtype": self.dtype_name,
            "sigma_data": self.sigma_data,
        }
