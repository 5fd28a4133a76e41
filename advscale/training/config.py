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
from dataclasses import dataclass
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
from advscale.core.options import device_option, internal, option, progress_option, seed_option
from advscale.errors import AdvscaleError

BN_SCHEDULES = ("advscale", "reference")
"""Batch-norm momentum schedules (``advscale.training.loop.bn_momentum_at``)."""

RECIPE = "Recipe"
DATA = "Data and evaluation"
RUN = "Run"

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


@dataclass
class TrainConfig:
    """All settings of one training run (see the module docstring for units and defaults)."""

    data: str = option("", help="Training data: train.h5, real.h5:1,syn.h5:7 or a mixture "
                       ".json.", panel=DATA)
    eval_data: str = option("", help="Test-set HDF5; its first eval_n rows are the fixed "
                            "evaluation subset.", panel=DATA)
    samples: int = option(0, help="Training samples D (not epochs), e.g. 20000 or 5e6.",
                          parse="count", metavar="N", panel=DATA, default_text="")
    model: str = option("wrn-28-10", help="A name from `advscale model list` (wrn-DEPTH-WIDTH, "
                        "resnet18, preactresnet18, ...) or a timm model name.", panel=RECIPE)
    activation: str | None = option(None, help="Activation (silu, relu, gelu) where the model "
                                    "family takes one; an error otherwise.", panel=RECIPE,
                                    default_text="the family's: silu for WRNs, relu for ResNets")
    padding: str | None = option(None, help="WRN stride-2 padding: dm (DeepMind's (0,1,0,1), TF "
                                 "SAME) or symmetric (1 each side); other models refuse a value.",
                                 panel=RECIPE, default_text="dm for WRNs")
    model_kwargs: dict[str, Any] = option(
        default_factory=dict, parse="kwargs", metavar="KEY=VALUE[,KEY=VALUE]", panel=RECIPE,
        help="Options of the model family (JSON values), e.g. img_size=32,patch_size=4 for a "
             "timm ViT or width=32 for a CIFAR ResNet; recorded in the checkpoint.")
    num_classes: int = option(10, help="Classes.", panel=DATA)
    init: str | None = option(None, help="Start from these weights: an advscale checkpoint, a "
                              "run directory or a published .pt (imported on the fly); the "
                              "architecture comes from it.", panel=RECIPE)
    init_sha256: str | None = internal(None, help="SHA-256 of the init file (apply_init).")
    loss: str = option("trades", help="trades, pgd-at or standard.", panel=RECIPE)
    beta: float = option(5.0, help="TRADES β.", panel=RECIPE)
    pgd_steps: int = option(10, help="Training attack steps.", panel=RECIPE)
    eps: float | None = option(None, help="Radius of the threat model.", unit="[0,1] pixel units",
                               parse="fraction", default_text="8/255 (linf), 0.5 (l2)",
                               panel=RECIPE)
    step_size: float | None = option(None, help="Training attack step.",
                                     unit="[0,1] pixel units", parse="fraction",
                                     default_text="2/255 (linf), 2.5·eps/steps (l2)",
                                     panel=RECIPE)
    norm: str = option("linf", help="Threat model of the training attack and the evaluation: "
                       "linf (the papers') or l2 (TRADES/PGD-AT with L2 PGD; default step "
                       "2.5·eps/steps, Madry et al. 2018, = eps/4 for 10 steps).",
                       metavar="linf|l2", panel=RECIPE)
    label_smoothing: float = option(0.1, help="On the clean CE term.", panel=RECIPE)
    attack_bn: str = option("train-no-update", help="Batch norm in the training attack: "
                            "train-no-update (batch statistics, running ones untouched, as the "
                            "reference) or eval (Zhang et al.: running statistics).",
                            panel=RECIPE)
    batch_size: int | None = option(None, help="Global batch (all ranks together).",
                                    unit="images", default_text="1024 for D ≤ 10M, else 2048",
                                    panel=RECIPE)
    lr: float | None = option(None, help="Peak learning rate.", panel=RECIPE,
                              default_text="0.3 for D ≤ 10M, 0.2 ≤ 200M, else 0.1")
    momentum: float = option(0.9, help="SGD momentum.", panel=RECIPE)
    nesterov: bool = option(True, help="Nesterov momentum.", panel=RECIPE)
    weight_decay: float = option(5e-4, help="Weight decay, not on norms/biases.", panel=RECIPE)
    warmup: float = option(0.25, help="One-cycle rise to the peak learning rate, fraction of "
                           "the optimizer steps.", panel=RECIPE)
    lr_start_div: float = internal(25.0, help="The schedule starts at lr / lr_start_div ...")
    lr_final_div: float = internal(1e4, help="... and ends at lr / (lr_start_div · "
                                   "lr_final_div), as torch's OneCycleLR.")
    ema_decay: float = option(0.995, help="Weight-averaging (EMA) decay per step.", panel=RECIPE)
    ema_warmup: float = option(0.025, help="Fraction of steps the EMA copies the weights.",
                               panel=RECIPE)
    bn_momentum: float = option(0.01, help="Batch-norm running-statistics momentum (Haiku's "
                                "0.99 decay) after its warm-up (training.loop.bn_momentum_at).",
                                panel=RECIPE)
    bn_schedule: str = option(
        "advscale", help="Batch-norm momentum schedule: advscale (1 on the first batch, then "
        "max(bn_momentum, 9/(10+t)), fading early statistics in short runs) or reference "
        "(DM-Improves-AT's watrain.py: 1 at step 0, then bn_momentum).", panel=RECIPE)
    augment: bool = option(True, help="Random crop (zero padding 4) + flip, on the device.",
                           panel=RECIPE)
    eval_n: int = option(1024, help="Evaluation images.", panel=DATA)
    eval_every: int | None = option(None, help="Samples between evaluations (0: only at the "
                                    "end).", default_text="D/10", panel=DATA)
    eval_steps: int = option(40, help="PGD steps of the evaluation.", panel=DATA)
    eval_loss: str = option("cw", help="Evaluation PGD loss: cw (clamped CW, the reference's), "
                            "cw-margin (unclamped) or ce.", panel=DATA)
    eval_step_size: float | None = internal(None, help="Evaluation PGD step, [0,1] pixel units; "
                                            "None = 2/255 (linf) or 2.5·eps/eval_steps (l2).")
    eval_batch_size: int = option(256, help="Evaluation batch.", unit="images", panel=DATA)
    checkpoint_every: int | None = option(None, help="Samples between checkpoints.",
                                          default_text="at each evaluation", panel=RUN)
    seed: int = seed_option("data order, init and attack noise")
    run_id: str | None = option(None, help="Run id in the records.", default_text="generated",
                                panel=RUN)
    device: str = device_option()
    amp: bool | None = option(None, help="bf16 autocast.", default_text="on CUDA", panel=RUN)
    channels_last: bool | None = option(None, help="Channels-last memory.",
                                        default_text="--channels-last", panel=RUN)
    compile: bool = option(False, help="torch.compile the model.", panel=RUN)
    workers: int | None = option(None, help="DataLoader workers.",
                                 default_text="0 on CPU, 4 on CUDA", panel=RUN)
    log_every: int = internal(20, help="Optimizer steps between non-finite-loss checks and "
                              "progress updates.")
    progress: bool = progress_option()
    extra: dict[str, Any] = internal(default_factory=dict, help="Free-form notes.")

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
        """Raise AdvscaleError naming the first bad setting (its field: ``e.field``)."""
        for name, value, names in (("loss", self.loss, LOSS_NAMES),
                                   ("attack_bn", self.attack_bn, ATTACK_BN_MODES),
                                   ("eval_loss", self.eval_loss, EVAL_LOSSES)):
            if value not in names:
                raise AdvscaleError(f"unknown {name} {value!r}; choose from {', '.join(names)}",
                                    field=name)
        for broken, msg, fields in self._rules():
            if broken:
                raise AdvscaleError(msg, field=fields)

    def _rules(self) -> list[tuple[bool, str, str]]:
        """(setting is bad, message, the fields at fault) for every numeric and required
        setting, in check order."""
        return [
            (not self.data, "data is required (a train.h5, a.h5:1,b.h5:7 mixture or mixture "
                            ".json)", "data"),
            (not self.eval_data, "eval_data is required (the test-set HDF5 file)", "eval_data"),
            (self.samples < 1, f"samples must be a positive number of training samples, got "
                               f"{self.samples}", "samples"),
            (self.eps is None or not (0 < self.eps <= self._top),
             f"eps {self.eps} must lie in (0, 1] (a fraction of the pixel range, e.g. 8/255)"
             if self.norm == "linf" else f"eps {self.eps} must lie in (0, 64] (an L2 radius, "
             "e.g. 0.5)", "eps"),
            (not (0 < (self.step_size or 0) <= self._top) or not (
                0 < (self.eval_step_size or 0) <= self._top),
             f"PGD step sizes (step_size, eval_step_size) must lie in (0, {self._top:g}]",
             "step_size,eval_step_size"),
            (self.pgd_steps < 0 or self.eval_steps < 0,
             "PGD step counts (pgd_steps, eval_steps) must be >= 0", "pgd_steps,eval_steps"),
            (self.beta < 0, f"beta must be >= 0, got {self.beta:g}", "beta"),
            (not (0 <= self.label_smoothing < 1), "label_smoothing must lie in [0, 1)",
             "label_smoothing"),
            (self.batch_size is not None and self.batch_size < 1, "batch_size must be >= 1",
             "batch_size"),
            (self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)),
             "lr must be a positive number", "lr"),
            (not (0 <= self.momentum < 1) or self.weight_decay < 0,
             "momentum must lie in [0, 1) and weight_decay be >= 0", "momentum,weight_decay"),
            (not (0 <= self.warmup < 1) or not (0 <= self.ema_warmup < 1),
             "warmup and ema_warmup are fractions of the run in [0, 1)", "warmup,ema_warmup"),
            (self.lr_start_div < 1 or self.lr_final_div < 1,
             "lr_start_div and lr_final_div must be >= 1", "lr_start_div,lr_final_div"),
            (not (0 <= self.ema_decay < 1), "ema_decay must lie in [0, 1)", "ema_decay"),
            (not (0 < self.bn_momentum <= 1), "bn_momentum must lie in (0, 1]", "bn_momentum"),
            (self.bn_schedule not in BN_SCHEDULES,
             f"bn_schedule must be one of {', '.join(BN_SCHEDULES)}, got {self.bn_schedule!r}",
             "bn_schedule"),
            (self.eval_n < 1 or self.eval_batch_size < 1,
             "eval_n and eval_batch_size must be >= 1", "eval_n,eval_batch_size"),
            ((self.eval_every or 0) < 0 or (self.checkpoint_every or 0) < 0,
             "eval_every and checkpoint_every must be >= 0", "eval_every,checkpoint_every"),
            (self.num_classes < 2, "num_classes must be >= 2", "num_classes"),
            (not isinstance(self.model_kwargs, dict)
             or not all(isinstance(k, str) for k in self.model_kwargs),
             "model_kwargs must map option names to values", "model_kwargs"),
            (self.log_every < 1, "log_every must be >= 1", "log_every"),
            (self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"),
             f"device {self.device!r}: use auto, cpu, cuda or cuda:N", "device"),
        ]

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise AdvscaleError(f"unknown training settings: {', '.join(unknown)}",
                                field=unknown[0])
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
    from advscale.models.registry import takes_option  # torch: only when a run is loaded

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
        raise AdvscaleError(f"resume with different settings than the run: {detail}",
                            field=clash[0])
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
    from advscale.models.checkpoint import read_checkpoint_metadata, resolve_checkpoint
    from advscale.models.registry import recorded_kwargs

    path = resolve_checkpoint(settings["init"])
    meta = read_checkpoint_metadata(path)
    out = dict(settings)
    for key in INIT_FIELDS:
        have = meta.get(key)
        if have is None:
            continue
        if key in settings and settings[key] is not None and settings[key] != have:
            raise AdvscaleError(f"{key} {settings[key]} contradicts init {settings['init']} "
                                f"({key} {have}); leave it out", field=f"{key},init")
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
