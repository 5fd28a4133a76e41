"""``diffusers``: a class-conditional diffusers ``UNet2DModel`` as an EDM denoiser (optional extra).

Install with ``pip install 'advscale[diffusers]'``. The model folder is either a pipeline
(``unet/`` + ``scheduler/``) or a bare model folder (``config.json`` + weights, with or without
``scheduler_config.json``); weights load from safetensors when present.

A diffusers model is a variance-preserving (DDPM) network: ``x_t = sqrt(a_t) x_0 +
sqrt(1 - a_t) eps`` with the scheduler's cumulative ``a_t`` (alphas_cumprod). The EDM state
``x = x_0 + sigma n`` maps to it with ``sigma(t) = sqrt((1 - a_t) / a_t)``,
``x_t = x / sqrt(1 + sigma²)`` and a fractional timestep ``t`` interpolated in ``log sigma``.
The stated prediction type turns the output into ``D(x; sigma)``:

* ``epsilon``: ``D = x - sigma · eps_hat``
* ``sample``: ``D = x0_hat``
* ``v_prediction``: ``D = sqrt(a_t) x_t - sqrt(1 - a_t) v_hat``

The EDM noise range is clipped to the model's (``sigma(0)`` .. ``sigma(T-1)``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from advscale.data import CIFAR10_CLASSES
from advscale.errors import AdvscaleError
from advscale.synthetic.base import DiffusionGenerator

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError:
        raise AdvscaleError(
            "the diffusers generator needs the optional extra: pip install 'advscale[diffusers]'"
        ) from None
    return diffusers


def vp_sigmas(alphas_cumprod: np.ndarray) -> np.ndarray:
    """EDM noise levels ``sqrt((1 - a) / a)`` of a VP schedule's cumulative alphas."""
    a = np.asarray(alphas_cumprod, dtype=np.float64)
    return np.sqrt((1 - a) / a)


class DiffusersGenerator(DiffusionGenerator):
    """A diffusers ``UNet2DModel`` (class-conditional) wrapped as ``D(x; sigma, label)``."""

    name = "diffusers"

    def __init__(self, unet: Any, alphas_cumprod: np.ndarray, prediction_type: str,
                 device: torch.device, dtype: str, fingerprint: str, source: str) -> None:
        if prediction_type not in PREDICTION_TYPES:
            raise AdvscaleError(f"prediction_type {prediction_type!r} must be one of "
                                f"{', '.join(PREDICTION_TYPES)}", field="prediction_type")
        cfg = unet.config
        k = getattr(cfg, "num_class_embeds", None)
        if not k:
            raise AdvscaleError(f"{source}: the UNet has no class embedding (num_class_embeds); "
                                "training data needs a class-conditional model")
        self.unet = unet
        self.prediction_type = prediction_type
        self.device = device
        self.dtype_name = "bfloat16" if dtype == "bf16" else "float32"
        self.table = torch.as_tensor(vp_sigmas(alphas_cumprod), dtype=torch.float64)
        self.log_table = self.table.log()
        self.sigma_min = max(0.002, float(self.table[0]))
        self.sigma_max = min(80.0, float(self.table[-1]))
        c = int(cfg.in_channels)
        size = cfg.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        self.image_shape = (c, int(h), int(w))
        if int(k) == 10:

            self.class_names = list(CIFAR10_CLASSES)
        else:
            self.class_names = [str(i) for i in range(int(k))]
        self._fingerprint = fingerprint
        self.source = source
        self.flops_per_call = self._measure_flops()

    @classmethod
    def load(cls, path: str | os.PathLike[str], prediction_type: str, device: str = "cpu",
             dtype: str = "fp32", compile: bool = False) -> DiffusersGenerator:
        diffusers = _import_diffusers()
        root = Path(path)
        if not root.is_dir():
            raise AdvscaleError(f"{root}: not a diffusers model folder")
        unet_dir = root / "unet" if (root / "unet" / "config.json").is_file() else root
        if not (unet_dir / "config.json").is_file():
            raise AdvscaleError(f"{root}: no config.json (expected a diffusers UNet2DModel)")
        try:
            unet = diffusers.UNet2DModel.from_pretrained(str(unet_dir), use_safetensors=None)
        except (OSError, ValueError) as e:
            raise AdvscaleError(f"{unet_dir}: cannot load the UNet2DModel ({e})") from None
        sched_dir = None
        for cand in (root / "scheduler", root):
            if (cand / "scheduler_config.json").is_file():
                sched_dir = cand
        if sched_dir is not None:
            sched = diffusers.DDPMScheduler.from_pretrained(str(sched_dir))
        else:
            sched = diffusers.DDPMScheduler()  # the DDPM default: linear betas 1e-4..0.02
        dev = torch.device(device)
        unet = unet.to(dev).eval().requires_grad_(False)
        h = hashlib.sha256()
        for f in sorted(unet_dir.glob("*")):
            if f.is_file():
                h.update(f.name.encode() + f.read_bytes())
        h.update(json.dumps(sched.config, sort_keys=True, default=str).encode())
        gen = cls(unet, sched.alphas_cumprod.numpy(), prediction_type, dev, dtype,
                  "sha256:" + h.hexdigest(), str(root))
        if compile:
            gen.unet = torch.compile(unet)
        return gen

    def _timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional training timestep whose noise level is ``sigma`` (log-linear interp)."""
        ls = sigma.to(torch.float64).clamp(float(self.table[0]), float(self.table[-1])).log()
        lt = self.log_table.to(ls.device)
        i = torch.searchsorted(lt, ls).clamp(1, len(lt) - 1)
        lo, hi = lt[i - 1], lt[i]
        frac = ((ls - lo) / (hi - lo)).clamp(0, 1)
        return (i - 1).to(torch.float64) + frac

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        s = sigma.to(self.device, torch.float64).reshape(-1, 1, 1, 1)
        x = x.to(self.device, torch.float64)
        a = 1.0 / (1.0 + s**2)  # alpha_cumprod at this sigma
        x_t = x * a.sqrt()
        t = self._timestep(sigma.to(self.device))
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.dtype_name == "bfloat16"):
            out = self.unet(x_t.to(torch.float32), t.to(torch.float32),
                            class_labels=labels.to(self.device)).sample
        out = out.to(torch.float64)
        if self.prediction_type == "epsilon":
            return x - s * out
        if self.prediction_type == "sample":
            return out
        return a.sqrt() * x_t - (1 - a).sqrt() * out

    def _measure_flops(self) -> float:

        c, h, w = self.image_shape
        x = torch.zeros(1, c, h, w, device=self.device)
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            self.unet(x, torch.zeros(1, device=self.device),
                      class_labels=torch.zeros(1, dtype=torch.long, device=self.device))
        return float(fc.get_total_flops())

    def fingerprint(self) -> str:
        return self._fingerprint

    def attrs(self) -> dict[str, Any]:
        a = super().attrs()
        a.update({"diffusers_prediction_type": self.prediction_type,
                  "diffusers_model": os.path.basename(os.path.normpath(self.source))})
        return a
