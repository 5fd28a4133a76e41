"""The training run's configuration: one validated dataclass, saved as ``DIR/config.json``.

Every default is the recipe of Bartoldson et al. (2024, section 3.1), which follows Wang et al.
(2023): TRADES with β = 5 and a 10-step L∞ PGD (ε = 8/255, step 2/255), label smoothing 0.1,
SGD with Nesterov momentum 0.9 and weight decay 5e-4 (not on norm/bias parameters), a one-cycle
cosine learning-rate schedule, weight averaging (EMA) with decay 0.995, and batch size / peak
learning rate chosen from the sample budget D (:func:`paper_batch_lr`). Units: ``eps`` and step
sizes are fractions of the [0, 1] pixel range (an L∞ radius, or a per-image L2 radius with
``norm="l2"``); ``samples``, ``eval_every`` and
``checkpoint_every`` count training samples (the paper's D), never epochs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advscale.attacks.norms import (
    DEFAULT_EPS,
    MAX_L2_EPS,
    NORMS,
    check_eps,
    default_step_size,
)
from advscale.core.fileio import atomic_write, file_sha256
from advscale.core.options import option
from advscale.errors import AdvscaleError
from advscale.models.checkpoint import read_checkpoint_metadata, resolve_checkpoint
from advscale.models.registry import recorded_kwargs, takes_option

LOSS_NAMES = ("trades", "pgd-at", "standard")
ATTACK_BN_MODES = ("train-no-update", "eval")
"""Batch-norm modes of the training attack (``advscale.attacks.pgd.BN_MODES``), default first."""
EVAL_LOSSES = ("cw", "cw-margin", "ce")
"""Losses of the evaluation's PGD (``advscale.attacks.pgd``): the clamped CW loss first."""
PADDINGS = ("dm", "symmetric")
"""WRN stride-2 convolution paddings (``advscale.models.wrn.PADDINGS``), default first; the WRN
family validates them."""

LEGACY_DEFAULTS = {"padding": "symmetric", "attack_bn": "eval", "eval_loss": "cw-margin"}
"""What a ``config.json`` written before these settings existed ran with: a resumed old run keeps
its model, training attack and evaluation (:meth:`TrainConfig.load`)."""

# Options that do not change what a run computes: they may differ between a run and its resume.
RUNTIME_KEYS = frozenset({"workers", "compile", "progress", "log_every", "device"})


def paper_batch_lr(samples: int) -> tuple[int, float]:
    """The papers' batch size and peak learning rate for a budget of ``samples`` (D).

    D ≤ 10M: batch 1024, lr 0.3; D ≤ 200M: batch 2048, lr 0.2; above: batch 2048, lr 0.1
    (Bartoldson et al. 2024, section 3.1 and appendix D).
    """
    if samples <= 10_000_000:
        return 1024, 0.3
    if samples <= 200_000_000:
        return 2048, 0.2
    return 2048, 0.1


BN_SCHEDULES = ("advscale", "reference")
"""Batch-norm momentum schedules (``advscale.training.loop.bn_momentum_at``)."""


@dataclass
class TrainConfig:
    """All settings of one training run (see the module docstring for units and defaults)."""

    data: str = ""
    """Training mixture: ``train.h5``, ``real.h5:1,syn.h5:7`` or a mixture ``.json``."""
    eval_data: str = ""
    """Test-set HDF5 file; the first ``eval_n`` rows are the fixed evaluation subset."""
    samples: int = 0
    """Training samples to draw (D), with replacement only once a source is exhausted."""
    model: str = "wrn-28-10"
    activation: str | None = None
    """The model's activation where its family takes one (WRN: silu by default; CIFAR ResNets:
    relu); None = the family's default. A model that takes none refuses a value."""
    padding: str | None = None
    """WRN stride-2 padding: ``dm`` (DeepMind's (0,1,0,1), TF SAME; the default) or
    ``symmetric`` (1 each side); None = the family's default. Other models refuse a value."""
    model_kwargs: dict[str, Any] = option(
        default_factory=dict, parse="kwargs", metavar="KEY=VALUE[,KEY=VALUE]",
        help="Options of the model family (JSON values), e.g. img_size=32,patch_size=4 for a "
             "timm ViT or width=32 for a CIFAR ResNet; recorded in the checkpoint.")
    num_classes: int = 10
    init: str | None = None
    """Start from these weights instead of a random initialisation (fine-tuning or continuing
    a model): an advscale checkpoint, a run directory, or a published ``.pt`` imported on the
    fly (``advscale model import``). The architecture comes from the checkpoint."""
    init_sha256: str | None = None
    """SHA-256 of the ``init`` file (filled in by :func:`apply_init`)."""
    loss: str = "trades"
    beta: float = 5.0
    pgd_steps: int = 10
    eps: float | None = None
    """Radius of the threat model; None = 8/255 (linf) or 0.5 (l2)."""
    step_size: float | None = None
    """Training attack step; None = 2/255 (linf) or 2.5·eps/pgd_steps (l2)."""
    norm: str = option("linf", help="Threat model of the training attack and the evaluation: "
                       "linf (the papers') or l2 (TRADES/PGD-AT with L2 PGD; default step "
                       "2.5·eps/steps, Madry et al. 2018, = eps/4 for 10 steps).",
                       metavar="linf|l2")
    label_smoothing: float = 0.1
    attack_bn: str = "train-no-update"
    """Batch norm during the training attack: ``train-no-update`` (the reference's: batch
    statistics, running statistics untouched) or ``eval`` (Zhang et al.: running statistics)."""
    batch_size: int | None = None
    """Global batch (all ranks together); None = the paper's choice for D."""
    lr: float | None = None
    """Peak learning rate; None = the paper's choice for D."""
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup: float = 0.25
    """Fraction of the optimizer steps spent rising to the peak learning rate (one-cycle)."""
    lr_start_div: float = 25.0
    """The schedule starts at lr / lr_start_div ..."""
    lr_final_div: float = 1e4
    """... and ends at lr / (lr_start_div · lr_final_div), as torch's OneCycleLR."""
    ema_decay: float = 0.995
    ema_warmup: float = 0.025
    """Fraction of the steps during which the EMA simply copies the weights."""
    bn_momentum: float = 0.01
    """Batch-norm running-statistics momentum (Haiku's 0.99 decay), reached after a warm-up
    (see ``advscale.training.loop.bn_momentum_at``)."""
    bn_schedule: str = option(
        "advscale", help="Batch-norm momentum schedule: advscale (1 on the first batch, then "
        "max(bn_momentum, 9/(10+t)), fading early statistics in short runs) or reference "
        "(DM-Improves-AT's watrain.py: 1 at step 0, then bn_momentum).", panel="Recipe")
    augment: bool = True
    """Random crop (zero padding 4) + horizontal flip, on the device."""
    eval_n: int = 1024
    eval_every: int | None = None
    """Samples between evaluations; None = 10 evaluations per run; 0 = only at the end."""
    eval_steps: int = 40
    eval_loss: str = "cw"
    """The evaluation PGD's loss: ``cw`` (the reference's clamped CW loss), ``cw-margin``
    (unclamped) or ``ce``."""
    eval_step_size: float | None = None
    """The evaluation PGD's step; None = 2/255 (linf) or 2.5·eps/eval_steps (l2)."""
    eval_batch_size: int = 256
    checkpoint_every: int | None = None
    """Samples between checkpoints; None = at every evaluation."""
    seed: int = 0
    run_id: str | None = None
    device: str = "auto"
    amp: bool | None = None
    """bf16 autocast for training; None = on for CUDA, off for CPU."""
    channels_last: bool | None = None
    """None = on (cuDNN, and oneDNN on CPU, run WRN convolutions faster channels-last)."""
    compile: bool = False
    workers: int | None = None
    """DataLoader worker processes; None = 0 on CPU, 4 on CUDA."""
    log_every: int = 20
    """Optimizer steps between non-finite-loss checks and progress updates."""
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived -----------------------------------------------------------------------------
    def resolved(self) -> TrainConfig:
        """A copy with the paper's batch/lr and the evaluation cadence filled in, validated."""
        cfg = dataclasses.replace(self, extra=dict(self.extra))
        bs, lr = paper_batch_lr(max(1, int(cfg.samples)))
        if cfg.batch_size is None:
            cfg.batch_size = bs
        if cfg.lr is None:
            cfg.lr = lr
        if cfg.eval_every is None:
            cfg.eval_every = max(1, math.ceil(cfg.samples / 10)) if cfg.samples > 0 else 0
        if cfg.checkpoint_every is None:
            cfg.checkpoint_every = cfg.eval_every
        if cfg.loss == "standard":
            cfg.pgd_steps = 0
        cfg._resolve_threat_model()
        cfg.validate()
        return cfg

    def _resolve_threat_model(self) -> None:
        """Fill ``eps`` and the step sizes from ``norm`` (:mod:`advscale.attacks.norms`)."""
        if self.norm not in NORMS:
            raise AdvscaleError(f"norm {self.norm!r} is not a threat model; choose from "
                                f"{', '.join(NORMS)}", field="norm")
        self.eps = check_eps(DEFAULT_EPS[self.norm] if self.eps is None else self.eps,
                             self.norm)
        if self.step_size is None:
            self.step_size = default_step_size(self.norm, self.eps, max(self.pgd_steps, 1))
        if self.eval_step_size is None:
            self.eval_step_size = default_step_size(self.norm, self.eps, self.eval_steps)

    @property
    def _top(self) -> float:
        """Largest radius and step of the threat model: 1 (L∞), 64 (L2)."""
        return 1.0 if self.norm == "linf" else MAX_L2_EPS

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run: ceil(D / batch)."""
        return -(-int(self.samples) // int(self.batch_size or 1))

    def validate(self) -> None:
        """Raise AdvscaleError naming the first bad setting."""
        for flag, value, names in (("--loss", self.loss, LOSS_NAMES),
                                   ("--attack-bn", self.attack_bn, ATTACK_BN_MODES),
                                   ("--eval-loss", self.eval_loss, EVAL_LOSSES)):
            if value not in names:
                raise AdvscaleError(f"unknown {flag} {value!r}; choose from {', '.join(names)}")
        for broken, msg in self._rules():
            if broken:
                raise AdvscaleError(msg)

    def _rules(self) -> list[tuple[bool, str]]:
        """(setting is bad, message) for every numeric and required setting, in check order."""
        return [
            (not self.data, "--data is required (a train.h5, a.h5:1,b.h5:7 mixture or mixture "
                            ".json)"),
            (not self.eval_data, "--eval-data is required (the test-set HDF5 file)"),
            (self.samples < 1, f"--samples must be a positive number of training samples, got "
                               f"{self.samples}"),
            (self.eps is None or not (0 < self.eps <= self._top),
             f"--eps {self.eps} must lie in (0, 1] (a fraction of the pixel range, e.g. 8/255)"
             if self.norm == "linf" else f"--eps {self.eps} must lie in (0, 64] (an L2 radius, "
             "e.g. 0.5)"),
            (not (0 < (self.step_size or 0) <= self._top) or not (
                0 < (self.eval_step_size or 0) <= self._top),
             f"PGD step sizes must lie in (0, {self._top:g}]"),
            (self.pgd_steps < 0 or self.eval_steps < 0, "PGD step counts must be >= 0"),
            (self.beta < 0, f"--beta must be >= 0, got {self.beta:g}"),
            (not (0 <= self.label_smoothing < 1), "--label-smoothing must lie in [0, 1)"),
            (self.batch_size is not None and self.batch_size < 1, "--batch-size must be >= 1"),
            (self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)),
             "--lr must be a positive number"),
            (not (0 <= self.momentum < 1) or self.weight_decay < 0,
             "--momentum must lie in [0, 1) and --weight-decay be >= 0"),
            (not (0 <= self.warmup < 1) or not (0 <= self.ema_warmup < 1),
             "--warmup and --ema-warmup are fractions of the run in [0, 1)"),
            (self.lr_start_div < 1 or self.lr_final_div < 1,
             "--lr-start-div and --lr-final-div must be >= 1"),
            (not (0 <= self.ema_decay < 1), "--ema-decay must lie in [0, 1)"),
            (not (0 < self.bn_momentum <= 1), "--bn-momentum must lie in (0, 1]"),
            (self.bn_schedule not in BN_SCHEDULES,
             f"bn_schedule must be one of {', '.join(BN_SCHEDULES)}, got {self.bn_schedule!r}"),
            (self.eval_n < 1 or self.eval_batch_size < 1,
             "--eval-n and --eval-batch-size must be >= 1"),
            ((self.eval_every or 0) < 0 or (self.checkpoint_every or 0) < 0,
             "--eval-every and --checkpoint-every must be >= 0"),
            (self.num_classes < 2, "--num-classes must be >= 2"),
            (not isinstance(self.model_kwargs, dict)
             or not all(isinstance(k, str) for k in self.model_kwargs),
             "model_kwargs must map option names to values"),
            (self.log_every < 1, "--log-every must be >= 1"),
            (self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"),
             f"--device {self.device!r}: use auto, cpu, cuda or cuda:N"),
        ]

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise AdvscaleError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically."""

        with atomic_write(path) as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """A saved ``config.json``; settings it predates take :data:`LEGACY_DEFAULTS`."""
        try:
            saved = _migrate({**LEGACY_DEFAULTS, **json.loads(Path(path).read_text())})
            return cls.from_dict(saved)
        except (OSError, ValueError, TypeError) as e:
            raise AdvscaleError(f"{path}: not a readable training config ({e})") from None

    def model_options(self) -> dict[str, Any]:
        """The keyword arguments the model is built with (None values are the family's
        defaults and are dropped by :func:`advscale.models.create_model`)."""
        return {"activation": self.activation, "padding": self.padding, **self.model_kwargs}


def _migrate(saved: dict[str, Any]) -> dict[str, Any]:
    """An older ``config.json``: ``init_model_kwargs`` became ``model_kwargs``; ``activation``
    and ``padding`` were written for every model and stay only where the model takes them."""
    out = dict(saved)
    out["model_kwargs"] = {**out.pop("init_model_kwargs", {}), **out.get("model_kwargs", {})}
    model = str(out.get("model", "wrn-28-10"))
    for key in ("activation", "padding"):
        if out.get(key) is not None and not takes_option(model, key):
            out[key] = None
    return out


def config_differences(saved: TrainConfig, new: TrainConfig) -> list[str]:
    """Names of settings that differ and would change the run's results."""
    a, b = saved.to_dict(), new.to_dict()
    return sorted(k for k in a if k not in RUNTIME_KEYS and a[k] != b.get(k))


def merge_for_resume(saved: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """The saved run's config with runtime-only ``overrides`` applied.

    Options given again on the command line must agree with the saved ones, except runtime
    options (workers, compile, progress, log_every, device); AdvscaleError lists the others.
    """
    current = saved.to_dict()
    clash = sorted(k for k, v in overrides.items()
                   if k not in RUNTIME_KEYS and k in current and current[k] != v)
    if clash:
        detail = ", ".join(f"{k}={overrides[k]!r} (run has {current[k]!r})" for k in clash)
        raise AdvscaleError(f"--resume with different settings than the run: {detail}")
    runtime = {k: v for k, v in overrides.items() if k in RUNTIME_KEYS}
    return dataclasses.replace(saved, **runtime)


INIT_FIELDS = ("model", "activation", "padding", "num_classes")
"""Settings an ``init`` checkpoint decides (given again, they must agree with it)."""


def apply_init(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (the options given) with the architecture of their ``init`` checkpoint.

    Reads the checkpoint's metadata (importing a published file on the fly): model, activation,
    padding, classes and input mean/std come from it, and its SHA-256 is recorded. An option
    given that contradicts the checkpoint raises AdvscaleError. Without ``init``: unchanged.
    """
    if not settings.get("init"):
        return settings
    path = resolve_checkpoint(settings["init"])
    meta = read_checkpoint_metadata(path)
    out = dict(settings)
    for key in INIT_FIELDS:
        have = meta.get(key)
        if have is None:
            continue
        if key in settings and settings[key] is not None and settings[key] != have:
            raise AdvscaleError(f"--{key.replace('_', '-')} {settings[key]} contradicts --init "
                                f"{settings['init']} ({key} {have}); leave it out")
        out[key] = have
    out["init_sha256"] = file_sha256(path)
    recorded = {k: list(v) if isinstance(v, tuple) else v
                for k, v in recorded_kwargs(meta).items() if k not in INIT_FIELDS}
    given = dict(settings.get("model_kwargs") or {})
    clash = sorted(k for k in given if k in recorded and given[k] != recorded[k])
    if clash:
        raise AdvscaleError(f"model_kwargs {clash[0]}={given[clash[0]]!r} contradicts the init "
                            f"checkpoint ({recorded[clash[0]]!r}); leave it out",
                            field="model_kwargs")
    out["model_kwargs"] = {**recorded, **given}
    return out
