"""``builtin-unet``: a small class-conditional U-Net trained here with the EDM recipe.

For users without NVlabs weights: ``advscale gen-synthetic train-denoiser train.h5 -o RUN``
trains it (hours on a GPU for useful samples; resumable), and
``advscale gen-synthetic --generator builtin-unet --model RUN ...`` samples from its EMA weights.

Training follows Karras et al. 2022 (section 5, "EDM" column of Table 1): noise levels
``ln sigma ~ N(P_mean = -1.2, P_std = 1.2)``, loss weight
``lambda(sigma) = (sigma² + sigma_data²) / (sigma · sigma_data)²``, the EDM preconditioning
(:class:`advscale.synthetic.edm.EDMPrecond`), Adam with a linear learning-rate warm-up, an EMA
of the weights with a half-life in images, and horizontal flips. The architecture is written
here (not NVlabs'): residual blocks with GroupNorm and SiLU, noise and class embeddings that
scale and shift each block, self-attention at the lowest resolution.

Run folder: ``last.safetensors`` (EMA weights + metadata; what the generator loads),
``state.safetensors`` (raw weights, EMA weights and Adam moments, to resume), ``log.jsonl``.
Everything is safetensors: nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from advscale.core.devices import resolve_device
from advscale.core.fileio import file_sha256
from advscale.core.stfile import load_tensors, save_tensors
from advscale.core.tensors import to_nchw
from advscale.data.layout import class_names_of, open_image_file
from advscale.data.reader import ImageMixture, parse_mixture
from advscale.data.sampler import MixtureStream
from advscale.errors import AdvscaleError
from advscale.models.averaging import EMA
from advscale.models.optim_state import load_optimizer_tensors, optimizer_tensors
from advscale.records import append_record
from advscale.synthetic.base import DiffusionGenerator
from advscale.synthetic.edm import SIGMA_DATA, EDMPrecond
from advscale.synthetic.jobs import image_seeds
from advscale.synthetic.records import denoiser_record

FORMAT = "advscale-edm-unet"
P_MEAN, P_STD = -1.2, 1.2


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the built-in U-Net (all sizes in channels; resolutions halve per level)."""

    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    blocks: int = 2
    dropout: float = 0.1
    attention: bool = True
    num_classes: int = 10
    image_channels: int = 3
    resolution: int = 32

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> UNetConfig:
        d = json.loads(text)
        d["channel_mult"] = tuple(d["channel_mult"])
        return cls(**d)


def _groups(c: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if c % g == 0 and c // g >= 2:
            return g
    return 1


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, embedding scale/shift, GroupNorm-SiLU-dropout-conv, residual."""

    def __init__(self, cin: int, cout: int, emb: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return (h + self.skip(x)) / math.sqrt(2)


class SelfAttention(nn.Module):
    """Single-head self-attention over pixels with a residual connection."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None], v.transpose(1, 2)[:, None]
        )[:, 0]
        return (x + self.proj(a.transpose(1, 2).reshape(b, c, h, w))) / math.sqrt(2)


class UNet(nn.Module):
    """``F(x_in, c_noise, labels)``: the raw network inside :class:`EDMPrecond`."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c0 = cfg.channels
        emb = 4 * c0
        self.freqs = nn.Parameter(torch.randn(c0 // 2) * 1.0, requires_grad=False)
        self.noise_mlp = nn.Sequential(nn.Linear(c0, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.class_emb = nn.Embedding(cfg.num_classes, emb)
        self.stem = nn.Conv2d(cfg.image_channels, c0, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [c0]
        c = c0
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.blocks):
                self.down.append(ResBlock(c, c0 * mult, emb, cfg.dropout))
                c = c0 * mult
                skips.append(c)
            if level < len(cfg.channel_mult) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, emb, cfg.dropout)
        self.mid_attn = SelfAttention(c) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(c, c, emb, cfg.dropout)
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), c0 * mult, emb, cfg.dropout))
                c = c0 * mult
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, cfg.image_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ang = c_noise.reshape(-1, 1).to(self.freqs.dtype) * self.freqs[None] * 2 * math.pi
        e = self.noise_mlp(torch.cat([ang.cos(), ang.sin()], dim=1))
        e = F.silu(e + self.class_emb(labels.long()))
        h = self.stem(x)
        hs = [h]
        for m in self.down:
            h = m(h, e) if isinstance(m, ResBlock) else m(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, e)), e)
        for m in self.up:
            if isinstance(m, ResBlock):
                h = m(torch.cat([h, hs.pop()], dim=1), e)
            else:
                h = m(h)
        return self.out(F.silu(self.out_norm(h)))


def build_denoiser(cfg: UNetConfig) -> EDMPrecond:
    """The EDM-preconditioned denoiser ``D(x; sigma, label)`` around a fresh :class:`UNet`."""
    return EDMPrecond(UNet(cfg), SIGMA_DATA)


def denoiser_flops(cfg: UNetConfig) -> float:
    """FLOPs per image of one denoiser call, counted on the meta device."""

    with torch.device("meta"):
        d = build_denoiser(cfg)
        x = torch.zeros(2, cfg.image_channels, cfg.resolution, cfg.resolution)
        with FlopCounterMode(display=False) as fc:
            d(x, torch.ones(2), torch.zeros(2, dtype=torch.long))
    return fc.get_total_flops() / 2


# ---------------------------------------------------------------------------------------------
# Checkpoints (safetensors only)


def _save(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    save_tensors(path, tensors, meta, what="denoiser checkpoint")


def _load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return load_tensors(path, what="safetensors file", decode=False)


def resolve_unet_checkpoint(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "last.safetensors"
    if not p.is_file():
        raise AdvscaleError(f"{path}: no built-in U-Net checkpoint (train one with "
                            "`advscale gen-synthetic train-denoiser`)")
    return p


class UNetGenerator(DiffusionGenerator):
    """The EMA weights of a ``train-denoiser`` run as an advscale generator."""

    name = "builtin-unet"

    def __init__(self, denoiser: nn.Module, cfg: UNetConfig, meta: dict[str, str], sha256: str,
                 device: torch.device, dtype: str = "fp32") -> None:
        self.net = denoiser
        self.cfg = cfg
        self.meta = meta
        self.sha256 = sha256
        self.device = device
        self.dtype_name = "bfloat16" if dtype == "bf16" else "float32"
        self.class_names = json.loads(meta.get("class_names", "[]")) or [
            str(i) for i in range(cfg.num_classes)]
        self.image_shape = (cfg.image_channels, cfg.resolution, cfg.resolution)
        self.flops_per_call = denoiser_flops(cfg)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu", dtype: str = "fp32",
             compile: bool = False) -> UNetGenerator:
        p = resolve_unet_checkpoint(path)
        tensors, md = _load(p)
        if md.get("format") != FORMAT:
            raise AdvscaleError(f"{p}: not a built-in U-Net checkpoint")
        cfg = UNetConfig.from_json(md["unet_config"])
        net = build_denoiser(cfg)
        try:
            net.load_state_dict(tensors)
        except RuntimeError as e:
            raise AdvscaleError(f"{p}: weights do not fit the stored config ({e})") from None
        dev = torch.device(device)
        net = net.to(dev).eval().requires_grad_(False)
        gen = cls(net, cfg, md, file_sha256(p), dev, dtype)
        if compile:
            gen.net = torch.compile(net)
        return gen

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x32 = x.to(self.device, torch.float32)
        s32 = sigma.to(self.device, torch.float32)
        if self.dtype_name == "bfloat16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                out = self.net(x32, s32, labels)
        else:
            out = self.net(x32, s32, labels)
        return out.to(torch.float64)

    def fingerprint(self) -> str:
        return "sha256:" + self.sha256

    def attrs(self) -> dict[str, Any]:
        a = super().attrs()
        a.update({"unet_config": json.loads(self.cfg.to_json()),
                  "unet_kimg": float(self.meta.get("kimg", "nan"))})
        return a


# ---------------------------------------------------------------------------------------------
# Training


def _seed_of(seed: int, step: int) -> int:
    return int(image_seeds(seed, np.asarray([step]))[0])


def train_denoiser(
    data: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    config: UNetConfig | None = None,
    kimg: float = 20_000.0,
    batch_size: int = 128,
    lr: float = 2e-4,
    warmup_kimg: float = 200.0,
    ema_kimg: float = 500.0,
    save_every_kimg: float = 500.0,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "fp32",
    resume: bool = True,
    log: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Train (or resume) the U-Net on ``data`` into ``run_dir``; yield a record per save.

    Lengths are in thousands of training images (``kimg``). Every ``save_every_kimg`` the
    EMA weights go to ``last.safetensors`` and the full state to ``state.safetensors``;
    resuming continues bit-for-bit (batches, noise and dropout derive from the seed and the
    step). Each yielded dict is a ``synthetic.denoiser`` record (docs/formats.md), as appended to
    ``log.jsonl``.
    """
    dev = resolve_device(device)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    spec, mixture, class_names, cfg = _denoiser_data(data, config)
    stream = MixtureStream(mixture.sizes, spec.weights, seed=seed)
    total = int(round(kimg * 1000))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initial weights depend on the seed alone
        net = build_denoiser(cfg).to(dev)
    ema = EMA(net)
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    state_path = run / "state.safetensors"
    run_meta = {"format": FORMAT, "unet_config": cfg.to_json(), "class_names": class_names,
                "data": str(data), "seed": seed, "batch_size": batch_size, "lr": lr,
                "warmup_kimg": warmup_kimg, "ema_kimg": ema_kimg}
    nimg, step = _resume_denoiser(state_path, run_meta, net, ema, opt, resume, log)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    flops_fwd = denoiser_flops(cfg)
    every = int(save_every_kimg * 1000)
    next_save = (nimg // every + 1) * every
    losses: list[float] = []
    t0, n0 = time.perf_counter(), nimg
    autocast = dtype == "bf16" and dev.type == "cuda"
    while nimg < total:
        bs = min(batch_size, total - nimg)
        images, labels = mixture[stream.indices(nimg, nimg + bs)]
        lr_now = lr * min(1.0, (nimg + bs) / max(warmup_kimg * 1000, 1))
        loss = _denoiser_step(net, opt, images, labels, _seed_of(seed, step), lr_now, dev,
                              autocast)
        nimg += bs
        step += 1
        half = min(ema_kimg * 1000, nimg * 0.05)
        ema.blend(net, 0.5 ** (bs / max(half, 1e-8)))  # EDM's half-life EMA
        losses.append(loss)
        if nimg >= next_save or nimg >= total:
            meta = {**run_meta, "nimg": nimg, "step": step, "kimg": nimg / 1000}
            _save_denoiser(run, state_path, net, ema, opt, meta)
            wall = time.perf_counter() - t0
            rec = {"run_dir": str(run), "kimg": nimg / 1000, "step": step,
                   "loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"],
                   "params": params, "denoiser_flops_per_call": flops_fwd,
                   "train_flops": 3 * flops_fwd * nimg, "wall_s": wall,
                   "images_per_s": (nimg - n0) / wall if wall > 0 else None,
                   "checkpoint": str(run / "last.safetensors"), "final": nimg >= total}
            record = denoiser_record(rec, seed=seed)
            append_record(run / "log.jsonl", record)
            if log:
                log(f"{run}: {nimg / 1000:.1f} kimg, loss {rec['loss']:.4f}")
            losses = []
            next_save += every
            yield record


def _denoiser_data(data: str | os.PathLike[str], config: UNetConfig | None
                   ) -> tuple[Any, ImageMixture, list[str], UNetConfig]:
    """The training mixture, its class names and the U-Net config sized to its images."""
    spec = parse_mixture(str(data))
    mixture = ImageMixture(spec.paths)
    with open_image_file(spec.paths[0]) as f:
        class_names = class_names_of(f)
    h, w, c = mixture.image_shape
    if h != w:
        raise AdvscaleError(f"{data}: images must be square, got {h}x{w}")
    cfg = config or UNetConfig()
    cfg = UNetConfig(**{**asdict(cfg), "num_classes": len(class_names), "image_channels": c,
                        "resolution": h})
    if h % (2 ** (len(cfg.channel_mult) - 1)):
        raise AdvscaleError(f"resolution {h} is not divisible by 2^{len(cfg.channel_mult) - 1}")
    return spec, mixture, class_names, cfg


def _resume_denoiser(state_path: Path, run_meta: dict[str, Any], net: nn.Module, ema: EMA,
                     opt: torch.optim.Optimizer, resume: bool,
                     log: Callable[[str], None] | None) -> tuple[int, int]:
    """Load a saved state into ``net``/``ema``/``opt``; ``(images seen, steps)`` (0, 0 if new)."""
    if not state_path.exists():
        return 0, 0
    if not resume:
        raise AdvscaleError(f"{state_path} exists; resume, or use a new run_dir",
                            field="resume,run_dir")
    tensors, md = _load(state_path)
    for k in ("unet_config", "seed", "batch_size"):
        if md.get(k) != (run_meta[k] if isinstance(run_meta[k], str)
                         else json.dumps(run_meta[k])):
            raise AdvscaleError(f"{state_path}: saved with another {k}; use a new run dir")
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    ema.module.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    load_optimizer_tensors(opt, tensors, prefix="adam.")
    nimg, step = int(md["nimg"]), int(md["step"])
    if log:
        log(f"{state_path.parent}: resuming at {nimg / 1000:.1f} kimg (step {step})")
    return nimg, step


def _denoiser_step(net: nn.Module, opt: torch.optim.Optimizer, images: np.ndarray,
                   labels: np.ndarray, seed: int, lr: float, dev: torch.device,
                   autocast: bool) -> float:
    """One EDM denoising step (flip, log-normal σ, weighted MSE); returns the loss."""
    bs = len(images)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    y = to_nchw(images, value_range="symmetric")
    flip = torch.rand(bs, generator=g) < 0.5
    y = torch.where(flip[:, None, None, None], y.flip(3), y)
    sigma = (torch.randn(bs, generator=g) * P_STD + P_MEAN).exp()
    noise = torch.randn(y.shape, generator=g)
    y, sigma, noise = y.to(dev), sigma.to(dev), noise.to(dev)
    lab = torch.from_numpy(labels).to(dev)
    weight = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
        d = net(y + noise * sigma[:, None, None, None], sigma, lab)
    loss = (weight[:, None, None, None] * (d.float() - y) ** 2).mean()
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for p in net.parameters():
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
    opt.step()
    return float(loss.detach())


def _save_denoiser(run: Path, state_path: Path, net: nn.Module, ema: EMA,
                   opt: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    """EMA weights to ``last.safetensors``; weights, EMA and Adam moments to the state file."""
    _save(run / "last.safetensors", ema.module.state_dict(), meta)
    adam, _, _ = optimizer_tensors(opt, "adam.")
    st = {**{"net." + k: v for k, v in net.state_dict().items()},
          **{"ema." + k: v for k, v in ema.module.state_dict().items()}, **adam}
    _save(state_path, st, meta)
