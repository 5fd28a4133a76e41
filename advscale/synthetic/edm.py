"""The EDM sampler and preconditioning, written from Karras et al. 2022 ("Elucidating the Design
Space of Diffusion-Based Generative Models"), Algorithm 2 and Table 1.

Conventions (those of the paper):

* Images live in ``[-1, 1]`` (uint8 pixel ``p`` is ``p / 127.5 - 1``); the data standard
  deviation is ``sigma_data = 0.5``.
* Noise levels ``sigma`` are standard deviations in those units; the schedule is
  ``sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho`` for
  ``i < N`` and ``sigma_N = 0``, with ``sigma_min = 0.002``, ``sigma_max = 80``, ``rho = 7``.
* A denoiser ``D(x; sigma)`` returns the estimate of the clean image. The probability-flow ODE is
  ``dx/dsigma = (x - D(x; sigma)) / sigma``.
* The deterministic sampler takes ``N = steps`` steps: Heun (2nd order) on every step but the
  last, which goes to ``sigma = 0`` with Euler. The number of denoiser evaluations (NFE) is
  therefore ``2 * steps - 1``. Optional "churn" (``S_churn``, ``S_min``, ``S_max``,
  ``S_noise``) adds fresh noise before a step (Algorithm 2, lines 4–6).
* The sampler state is float64 whatever the network's dtype; networks see their own dtype.

Nothing here is specific to a network: generators (``advscale.synthetic.generators``) supply
``denoise(x, sigma, labels)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advscale.core.tensors import to_nchw
from advscale.synthetic.sampler import (  # noqa: F401  (re-exported: the sampler's settings)
    RHO,
    SIGMA_DATA,
    SIGMA_MAX,
    SIGMA_MIN,
    SamplerConfig,
    nfe_for,
)

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``denoise(x float64 (B, C, H, W), sigma float64 (B,), labels int64 (B,)) -> D(x; sigma)``."""


def edm_sigmas(
    steps: int,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``steps + 1`` noise levels of the EDM schedule, float64, ending with 0."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (got {steps})")
    i = torch.arange(steps, dtype=torch.float64, device=device)
    a, b = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    t = (a + i / (steps - 1) * (b - a)) ** rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64, device=device)])


def edm_precond(
    sigma: torch.Tensor, sigma_data: float = SIGMA_DATA
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EDM preconditioning (Table 1): ``c_skip, c_out, c_in, c_noise`` for noise level ``sigma``.

    ``D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)`` with
    ``c_skip = sd² / (sigma² + sd²)``, ``c_out = sigma·sd / sqrt(sigma² + sd²)``,
    ``c_in = 1 / sqrt(sigma² + sd²)``, ``c_noise = ln(sigma) / 4``.
    """
    s2 = sigma * sigma
    d2 = sigma_data * sigma_data
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / torch.sqrt(s2 + d2)
    c_in = 1.0 / torch.sqrt(s2 + d2)
    c_noise = torch.log(sigma) / 4.0
    return c_skip, c_out, c_in, c_noise


class EDMPrecond(nn.Module):
    """Wrap a raw network ``F(x_in, c_noise, labels)`` into the EDM denoiser ``D(x; sigma)``.

    ``forward(x, sigma, labels)`` takes ``x`` (B, C, H, W), ``sigma`` (B,) and integer
    ``labels`` (B,), runs ``F`` in the network's dtype, and returns ``D`` in ``x``'s dtype.
    """

    def __init__(self, net: nn.Module, sigma_data: float = SIGMA_DATA) -> None:
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sigma = sigma.to(x.dtype).reshape(-1, 1, 1, 1)
        c_skip, c_out, c_in, c_noise = edm_precond(sigma, self.sigma_data)
        dtype = next(self.net.parameters()).dtype
        f = self.net((c_in * x).to(dtype), c_noise.reshape(-1).to(dtype), labels)
        return c_skip * x + c_out * f.to(x.dtype)


@dataclass
class SampleResult:
    """Final images (float64, ``[-1, 1]`` scale, not clipped) and denoiser evaluations used."""

    images: torch.Tensor
    nfe: int


def per_image_normal(
    generators: Sequence[torch.Generator], shape: Sequence[int], device: torch.device | str
) -> torch.Tensor:
    """One standard-normal draw of ``shape`` per generator, stacked, float64 on ``device``.

    Draws happen on the CPU from each image's own generator, so an image's noise never depends
    on its batch, shard or device.
    """
    out = torch.empty((len(generators), *shape), dtype=torch.float64)
    for i, g in enumerate(generators):
        out[i] = torch.randn(tuple(shape), generator=g, dtype=torch.float64)
    return out.to(device)


def edm_sample(
    denoise: Denoiser,
    latents: torch.Tensor,
    labels: torch.Tensor,
    config: SamplerConfig,
    generators: Sequence[torch.Generator] | None = None,
) -> SampleResult:
    """Run the EDM sampler (Algorithm 2) from unit-normal ``latents`` to images.

    ``latents`` (B, C, H, W) are scaled by ``sigma_max``; ``generators`` (one per image) supply
    the churn noise and are required only when ``config.s_churn > 0``. The state is float64.
    Returns the images at ``sigma = 0`` and the number of denoiser evaluations made.
    """
    device = latents.device
    t = edm_sigmas(config.steps, config.sigma_min, config.sigma_max, config.rho, device)
    n = latents.shape[0]
    x = latents.to(torch.float64) * t[0]
    nfe = 0
    gamma_max = min(config.s_churn / config.steps, math.sqrt(2.0) - 1.0)
    if config.s_churn > 0 and generators is None:
        raise ValueError("churn needs one random generator per image")

    def d_of(xx: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        s = sigma.expand(n).to(torch.float64)
        den = denoise(xx, s, labels).to(torch.float64)
        return (xx - den) / sigma

    for i in range(config.steps):
        t_cur, t_next = t[i], t[i + 1]
        gamma = gamma_max if config.s_min <= float(t_cur) <= config.s_max else 0.0
        t_hat = t_cur + gamma * t_cur
        if gamma > 0:
            eps = per_image_normal(generators, x.shape[1:], device)  # type: ignore[arg-type]
            x_hat = x + torch.sqrt(t_hat**2 - t_cur**2) * config.s_noise * eps
        else:
            x_hat = x
        d = d_of(x_hat, t_hat)
        x_next = x_hat + (t_next - t_hat) * d
        if config.solver == "heun" and i < config.steps - 1:
            d2 = d_of(x_next, t_next)
            x_next = x_hat + (t_next - t_hat) * (0.5 * d + 0.5 * d2)
        x = x_next
    return SampleResult(images=x, nfe=nfe)


def from_uint8(pixels: Any) -> torch.Tensor:
    """uint8 NHWC pixels (array or tensor) to float64 NCHW images in ``[-1, 1]``."""
    return to_nchw(pixels, value_range="symmetric", dtype=torch.float64)
