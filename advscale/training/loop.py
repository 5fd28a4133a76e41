"""The training loop behind ``advscale train``: samples, not epochs; records; exact resume.

:func:`train` runs one configured run (:class:`~advscale.training.config.TrainConfig`) in a run
directory, single-process or under ``torchrun`` (DDP). Each optimizer step draws the next
global batch of the mixture stream (without replacement until a source is exhausted), augments
it on the device, runs the training objective (TRADES, PGD-AT or standard, attack included),
steps SGD under the one-cycle schedule and updates the EMA. Every ``eval_every`` samples and at
the end, the EMA model is evaluated (:mod:`advscale.training.evaluate`) and one ``train.eval``
record goes to stdout and ``records.jsonl``; checkpoints go to ``state.safetensors`` (resume)
and ``last.safetensors`` (EMA weights for ``attack``).

Randomness is keyed, not carried: the augmentation and attack noise of step ``t`` on rank ``r``
come from a generator seeded by (seed, t, r), and the data order is a pure function of the
seed and stream position. A resumed run therefore continues exactly as the uninterrupted run
would have, given the same hardware and thread count.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from advscale.core.logs import log_line
from advscale.data.reader import ImageMixture, parse_mixture, torch_loader
from advscale.data.sampler import MixtureStream, ResumableBatchSampler
from advscale.errors import AdvscaleError
from advscale.models import count_parameters, create_model, takes_option
from advscale.models.averaging import EMA
from advscale.models.checkpoint import load_for_eval, save_model_checkpoint
from advscale.models.registry import drop_unset
from advscale.records import append_record, make_record, write_record
from advscale.training.augment import random_crop_flip, to_model_input
from advscale.training.config import TrainConfig
from advscale.training.ddp import (
    DistInfo,
    all_reduce_sum,
    barrier,
    broadcast_module,
    broadcast_object,
    check_in_sync,
    env_dist_info,
    init_distributed,
    maybe_sync_bn,
    pick_device,
    shutdown_distributed,
    wrap_ddp,
)
from advscale.training.losses import LOSSES, AttackConfig
from advscale.training.optim import make_sgd, set_lr
from advscale.training.progress import Bar, crossed, warn_short_schedule
from advscale.training.rundir import RunDir, check_resumable, claim_run_dir, new_run_id
from advscale.training.schedule import OneCycleCosine, bn_momentum_at, step_seed
from advscale.training.sources import (
    check_model_accepts,
    data_model_settings,
    describe_sources,
    mixture_fid,
)
from advscale.training.state import collect_state, read_state, restore_state, save_state

logger = logging.getLogger(__name__)



def _log(msg: str) -> None:
    """A human line to this module's logger (the command line shows it on stderr)."""
    log_line(logger, msg)


@dataclass
class Counters:
    """The scalar progress of a run (saved in the training state)."""

    step: int = 0
    samples_seen: int = 0
    position: int = 0
    records_written: int = 0
    wall_s: float = 0.0
    loss_sum: float = 0.0
    loss_count: int = 0
    last_checkpoint_step: int = -1
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class TrainingSession:
    """One training run, set up and ready to :meth:`run`. See :func:`train`."""

    def __init__(self, cfg: TrainConfig, out: str | Path, dist: DistInfo, device: torch.device,
                 *, resuming: bool, stdout: IO[str] | None = None,
                 command: str | None = None) -> None:

        self.cfg, self.dist, self.device = cfg, dist, device
        self.run_dir = RunDir(out)
        self.stdout = sys.stdout if stdout is None else stdout
        self.command = command
        self.log = _log if dist.is_main else (lambda msg: None)
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels
        self.amp = cfg.amp if cfg.amp is not None else self.cuda
        self.channels_last = cfg.channels_last if cfg.channels_last is not None else True
        if cfg.batch_size % dist.world_size:
            raise AdvscaleError(f"batch_size {cfg.batch_size} is not divisible by the "
                                f"{dist.world_size} ranks", field="batch_size")

        # -- model: built for the training file's classes, image size and mean/std ----------

        spec = parse_mixture(cfg.data)
        # the training file's class count, mean/std and image size (attributes only; §1 of
        # docs/formats.md); explicit or --init model_kwargs win over the data's mean/std
        cfg.num_classes, data_norm, image_size = data_model_settings(spec.paths, cfg.num_classes)
        if data_norm and takes_option(cfg.model, "mean"):
            cfg.model_kwargs = {**data_norm, **cfg.model_kwargs}
        torch.manual_seed(cfg.seed)  # the initial weights (identical on every rank)
        raw = create_model(cfg.model, num_classes=cfg.num_classes, image_size=image_size,
                           **cfg.model_options())
        if cfg.init and not resuming:
            raw.load_state_dict(load_for_eval(cfg.init)[0].state_dict())
            self.log(f"advscale train: starting from the weights of {cfg.init}")
        self.params = count_parameters(raw)

        self._load_data(spec, raw)

        self._cached_flops: tuple[float | None] | None = None  # set by a resume's state
        # -- model, EMA, optimizer, schedule -------------------------------------------------

        raw = raw.to(device)
        if self.channels_last:
            raw = raw.to(memory_format=torch.channels_last)

        raw = maybe_sync_bn(raw, device, dist)
        self.raw = raw
        self.total_steps = cfg.total_steps
        warn_short_schedule(cfg.samples, cfg.batch_size, cfg.warmup, self.total_steps, self.log)
        self.ema = EMA(raw, cfg.ema_decay, warmup_steps=int(cfg.ema_warmup * self.total_steps))
        self.optimizer = make_sgd(raw, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay,
                                  fused=self.cuda)
        self.schedule = OneCycleCosine(cfg.lr, self.total_steps, cfg.warmup, cfg.lr_start_div,
                                       cfg.lr_final_div)
        self.counters = Counters()
        self.records_on_disk = 0
        if resuming and self.run_dir.state.is_file():
            self._restore()
        elif resuming:
            self.log(f"advscale train: {self.run_dir.path} has no checkpoint yet; starting the "
                     "run from the beginning")
        self.flops_per_sample = self._count_flops()
        if self.dist.is_main:
            self.run_dir.drop_torn_record()
            self.records_on_disk = self.run_dir.records_on_disk()

        broadcast_module(self.raw, dist)
        broadcast_module(self.ema.module, dist)
        self.attack_net: nn.Module = raw
        self.train_net: nn.Module = wrap_ddp(raw, device, dist)
        if cfg.compile:
            self.attack_net = torch.compile(raw)
            self.train_net = (torch.compile(self.train_net) if dist.distributed
                              else self.attack_net)

    # -- setup helpers -------------------------------------------------------------------------
    def _load_data(self, spec: Any, raw: nn.Module) -> None:
        """The training mixture, its sampling stream and sources; the fixed evaluation subset
        (only its ``eval_n`` rows are read)."""
        cfg = self.cfg
        self.mixture = ImageMixture(spec.paths)
        self._check_images(self.mixture, cfg.data)
        check_model_accepts(raw, self.mixture.image_shape, cfg.model, cfg.data)
        self.stream = MixtureStream(self.mixture.sizes, spec.weights, seed=cfg.seed)
        self.sources = describe_sources(spec.paths, self.mixture.sizes, spec.weights,
                                        [s.attrs for s in self.mixture.sources])
        self.fid = mixture_fid(self.sources)
        test = ImageMixture([cfg.eval_data], max_rows=cfg.eval_n)
        self._check_images(test, cfg.eval_data)
        n_eval = min(cfg.eval_n, len(test))
        self.eval_images, self.eval_labels = test[np.arange(n_eval)]

    def _check_images(self, mixture: Any, what: str) -> None:
        want = getattr(self, "mixture", None)
        want = tuple(want.image_shape) if want is not None and want is not mixture else None
        if want is not None and tuple(mixture.image_shape) != want:
            raise AdvscaleError(
                f"{what}: images are {'×'.join(map(str, mixture.image_shape))}; the training "
                f"data's are {'×'.join(map(str, want))} (docs/formats.md)"
            )
        if len(mixture) == 0:
            raise AdvscaleError(f"{what}: holds no images")
        lab = mixture.labels
        if lab.min() < 0 or lab.max() >= self.cfg.num_classes:
            raise AdvscaleError(
                f"{what}: labels span {int(lab.min())}..{int(lab.max())}, outside the "
                f"{self.cfg.num_classes} classes of the model (num_classes)", field="num_classes")

    def _flops_key(self) -> list[Any]:
        """What the FLOPs count depends on (a cached count is reused only when it matches)."""
        cfg = self.cfg
        return [cfg.model, cfg.loss, cfg.pgd_steps, cfg.activation, cfg.num_classes]

    def _count_flops(self) -> float | None:
        """Training FLOPs per sample (same counter as count-flops), counted once per run: a
        resume reuses the count its training state keeps."""
        if self._cached_flops is not None:
            return self._cached_flops[0]
        from advscale.training.flops import count_training_flops

        cfg = self.cfg
        try:
            fc = count_training_flops(cfg.model, cfg.loss, cfg.pgd_steps,
                                      num_classes=cfg.num_classes,
                                      image_size=int(self.mixture.image_shape[0]),
                                      model_kwargs=cfg.model_options())
        except Exception as e:  # a timm model the meta-device counter cannot trace
            self.log(f"advscale train: warning: could not count FLOPs of {cfg.model} ({e}); "
                     "train_flops will be null")
            return None
        return float(fc.train_flops_per_sample)

    def _restore(self) -> None:

        tensors, meta = read_state(self.run_dir.path)
        restore_state(tensors, meta, self.raw, self.ema.module, self.optimizer)
        self.ema.load_state_dict(meta["ema"])
        c = meta["counters"]
        self.counters = Counters(**c)
        flops = meta.get("flops")
        if isinstance(flops, dict) and flops.get("key") == self._flops_key():
            self._cached_flops = (flops.get("per_sample"),)
        if meta.get("sampler", {}).get("seed", self.cfg.seed) != self.cfg.seed:
            raise AdvscaleError("training state was saved with another seed")
        self.log(f"advscale train: resuming {self.cfg.run_id} at step {self.counters.step:,} "
                 f"({self.counters.samples_seen:,} samples seen)")

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Train to the sample budget; return the records this call emitted."""

        cfg, c, dist = self.cfg, self.counters, self.dist
        emitted: list[dict[str, Any]] = []
        if c.done:
            self.log(f"advscale train: run {cfg.run_id} is already complete "
                     f"({c.samples_seen:,} samples); nothing to do")
            return emitted
        sampler = ResumableBatchSampler(self.stream, cfg.batch_size, cfg.samples,
                                        rank=dist.rank, world_size=dist.world_size)
        sampler.position = c.position
        workers = cfg.workers if cfg.workers is not None else (4 if self.cuda else 0)
        loader = torch_loader(self.mixture, sampler, num_workers=workers, pin_memory=self.cuda)
        step_fn = LOSSES[cfg.loss]
        attack = AttackConfig(eps=cfg.eps, step_size=cfg.step_size, steps=cfg.pgd_steps,
                              bn=cfg.attack_bn, norm=cfg.norm)
        bns = [m for m in self.raw.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        loss_acc = torch.zeros((), dtype=torch.float64, device=self.device)
        count_acc = 0
        self._segment_start = time.perf_counter()
        self._wall_before = c.wall_s
        checked_step = c.step
        shown_loss = float("nan")
        bar = self._progress()
        self.raw.train()
        try:
            for xb, yb in loader:
                t = c.step
                gen = torch.Generator(device=self.device).manual_seed(step_seed(cfg.seed, t,
                                                                                dist.rank))
                x8 = xb.to(self.device, non_blocking=True)
                y = yb.to(self.device, non_blocking=True)
                if cfg.augment:
                    x8 = random_crop_flip(x8, 4, True, generator=gen)
                x = to_model_input(x8, self.channels_last)
                set_lr(self.optimizer, self.schedule(t))
                bn_m = bn_momentum_at(t, cfg.bn_momentum, cfg.bn_schedule)
                for m in bns:
                    m.momentum = bn_m
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    out = step_fn(self.train_net, x, y, attack, beta=cfg.beta,
                                  label_smoothing=cfg.label_smoothing, generator=gen,
                                  attack_model=self.attack_net)
                self.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                self.optimizer.step()
                c.step += 1
                self.ema.update(self.raw, c.step)
                local = len(yb)
                loss_acc += out.loss.detach().double() * local
                count_acc += local
                prev = c.samples_seen
                c.samples_seen += local * dist.world_size
                c.position = min(c.position + cfg.batch_size, cfg.samples)
                final = c.position >= cfg.samples
                do_eval = final or crossed(prev, c.samples_seen, cfg.eval_every)
                do_ckpt = do_eval or crossed(prev, c.samples_seen, cfg.checkpoint_every)
                if do_ckpt or c.step - checked_step >= cfg.log_every:
                    checked_step = c.step
                    self._check_finite(loss_acc, weights=do_ckpt)
                    c.loss_sum += float(loss_acc)
                    c.loss_count += count_acc
                    loss_acc.zero_()
                    count_acc = 0
                    shown_loss = c.loss_sum / max(c.loss_count, 1)
                if bar is not None:
                    bar.advance(c.samples_seen, shown_loss, self.schedule(t))
                if do_eval:
                    emitted.append(self._evaluate_and_record(final))
                if do_ckpt:
                    c.done = final
                    self._checkpoint()
                if final:
                    break
        finally:
            if bar is not None:
                bar.close()
        return emitted

    def _check_finite(self, loss_acc: torch.Tensor, weights: bool = False) -> None:
        """Stop (AdvscaleError) if the loss, or with ``weights`` any weight, is not finite."""

        ok = bool(torch.isfinite(loss_acc))
        if weights and ok:
            ok = bool(torch.isfinite(torch.stack([p.detach().float().sum()
                                                  for p in self.raw.parameters()]).sum()))
        bad = torch.tensor([0.0 if ok else 1.0], device=self.device)
        all_reduce_sum(bad, self.dist)
        if bad.item() > 0:
            c = self.counters
            kept = (f"the last good checkpoint (step {c.last_checkpoint_step:,}) is kept in "
                    f"{self.run_dir.path}" if c.last_checkpoint_step >= 0
                    else "no checkpoint had been written yet")
            raise AdvscaleError(
                f"the training loss or weights became non-finite by step {c.step:,} "
                f"({c.samples_seen:,} samples); stopped without saving; {kept} (try a lower "
                "lr)", field="lr")

    def _wall(self) -> float:
        return self._wall_before + (time.perf_counter() - self._segment_start)

    def _evaluate_and_record(self, final: bool) -> dict[str, Any]:
        from advscale.training.evaluate import evaluate_robustness

        cfg, c = self.cfg, self.counters
        # CPU ranks keep local batch-norm statistics: evaluate (and save) rank 0's everywhere
        broadcast_module(self.ema.module, self.dist)
        self.ema.module.eval()
        res = evaluate_robustness(
            self.ema.module, self.eval_images, self.eval_labels, eps=cfg.eps,
            step_size=cfg.eval_step_size, steps=cfg.eval_steps, batch_size=cfg.eval_batch_size,
            seed=0, loss=cfg.eval_loss, device=self.device, channels_last=self.channels_last,
            dist=self.dist, norm=cfg.norm)

        tot = all_reduce_sum(torch.tensor([c.loss_sum, float(c.loss_count)],
                                          dtype=torch.float64, device=self.device), self.dist)
        train_loss = float(tot[0] / tot[1]) if tot[1] > 0 else None
        c.loss_sum, c.loss_count = 0.0, 0
        per = self.flops_per_sample
        payload = {
            "run_id": cfg.run_id,
            "model": cfg.model,
            "activation": getattr(self.raw, "activation", None),
            "model_kwargs": drop_unset(cfg.model_options()),
            "params": self.params,
            "loss": cfg.loss,
            "beta": cfg.beta if cfg.loss == "trades" else 0.0,
            "pgd_steps": cfg.pgd_steps,
            "eps": cfg.eps,
            "norm": cfg.norm,
            "ema_decay": cfg.ema_decay,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "step": c.step,
            "samples_seen": c.samples_seen,
            "samples_unique": min(self.stream.unique_drawn(c.position), c.samples_seen),
            "data": self.sources,
            "fid": self.fid,
            "train_flops": None if per is None else per * c.samples_seen,
            "train_flops_per_sample": per,
            "wall_s": self._wall(),
            "train_loss": train_loss,
            "eval_n": res.n,
            "eval_attack": f"pgd-{cfg.eval_loss}-{cfg.eval_steps}",
            "clean_acc": res.clean_acc,
            "robust_acc": res.robust_acc,
            "adv_loss": res.adv_loss,
            "final": bool(final),
            "samples_target": cfg.samples,
            "label_smoothing": cfg.label_smoothing,
            "world_size": self.dist.world_size,
            "device": self.device.type,
            "init": cfg.init,
            "init_sha256": cfg.init_sha256,
        }
        rec = make_record("train.eval", payload, command=self.command, config=cfg.to_dict(),
                          seed=cfg.seed)
        if self.dist.is_main and c.records_written >= self.records_on_disk:
            # a resumed run replays its evaluations: only records not in records.jsonl (so
            # never emitted before) go to stdout, so a pipe downstream sees no duplicates
            write_record(rec, self.stdout)
            append_record(self.run_dir.records, rec)
        if self.dist.is_main:
            self.log(
                f"advscale train: step {c.step:,} samples {c.samples_seen:,}/{cfg.samples:,} "
                f"loss {train_loss if train_loss is not None else float('nan'):.4f} "
                f"clean {res.clean_acc:.4f} {payload['eval_attack']} {res.robust_acc:.4f} "
                f"adv_loss {res.adv_loss:.4f} ({payload['wall_s']:.0f}s)"
            )
        c.records_written += 1
        return rec

    def _checkpoint(self) -> None:

        cfg, c = self.cfg, self.counters
        check_in_sync(self.raw, self.dist)
        c.wall_s = self._wall()
        prev_ckpt = c.last_checkpoint_step
        c.last_checkpoint_step = c.step
        if self.dist.is_main:
            meta = {"model": cfg.model, "model_kwargs": drop_unset(cfg.model_options()),
                    "num_classes": cfg.num_classes, "run_id": cfg.run_id,
                    "samples_seen": c.samples_seen, "step": c.step, "loss": cfg.loss,
                    "eps": cfg.eps, "pgd_steps": cfg.pgd_steps, "weights": "ema",
                    "attack_bn": cfg.attack_bn, "norm": cfg.norm}
            try:
                save_model_checkpoint(self.run_dir.last, self.ema.module, meta)
            except AdvscaleError:
                raise
            except Exception as e:
                c.last_checkpoint_step = prev_ckpt
                raise AdvscaleError(f"could not write {self.run_dir.last} ({e}); the previous "
                                    "checkpoint is intact") from None
            scalars = {
                "counters": {k: v for k, v in c.__dict__.items()},
                "ema": self.ema.state_dict(),
                "sampler": {"position": c.position, "seed": cfg.seed,
                            "num_samples": cfg.samples, "batch_size": cfg.batch_size},
                "schedule": self.schedule.state_dict(),
                "run_id": cfg.run_id,
                "flops": {"per_sample": self.flops_per_sample, "key": self._flops_key()},
            }
            tensors, meta_s = collect_state(self.raw, self.ema.module, self.optimizer, scalars)
            try:
                save_state(self.run_dir.path, tensors, meta_s)
            except AdvscaleError:
                c.last_checkpoint_step = prev_ckpt
                raise
        barrier(self.dist)

    def _progress(self) -> Bar | None:
        if not (self.dist.is_main and self.cfg.progress):
            return None
        return Bar(self.cfg.samples, self.counters.samples_seen)


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    stdout: IO[str] | None = None,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """Run (or with ``resume`` continue) one training run in directory ``out``.

    Works in a plain process and under ``torchrun`` (DDP; only rank 0 writes). Records go to
    ``stdout`` (default sys.stdout) and ``out/records.jsonl``; returns the records emitted by
    this call. Raises AdvscaleError for bad input, a non-finite loss or a failed checkpoint.
    """

    dist = env_dist_info()
    run_dir = RunDir(out)
    resuming = bool(resume and run_dir.has_run())
    if resuming:
        cfg = check_resumable(run_dir, cfg)
    elif not run_dir.is_empty():
        raise AdvscaleError(
            f"out {run_dir.path} already exists and is not empty; resume its run, or choose a "
            "new directory (advscale never deletes a run directory)", field="out,resume")
    cfg = cfg.resolved()
    device = pick_device(cfg.device, dist)
    init_distributed(device, dist)
    try:
        with claim_run_dir(run_dir, resuming, dist.is_main):  # locked; cleaned if it fails
            if cfg.run_id is None:
                cfg.run_id = broadcast_object(new_run_id(cfg) if dist.is_main else None, dist)
            barrier(dist)  # every rank has checked the directory before rank 0 writes to it
            run = TrainingSession(cfg, run_dir.path, dist, device, resuming=resuming,
                                  stdout=stdout, command=command)
            if dist.is_main and not resuming:
                run_dir.path.mkdir(parents=True, exist_ok=True)
                cfg.save(run_dir.config)
            barrier(dist)
            return run.run()
    finally:
        shutdown_distributed()
