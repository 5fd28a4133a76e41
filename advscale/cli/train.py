"""``advscale train``: adversarial training by samples, with records, checkpoints and resume.

A thin layer over :func:`advscale.training.loop.train`; every option defaults to the paper's
recipe (see ``advscale.training.config``). Options left out are None here, so ``--resume``
can take everything from the run's ``config.json``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from advscale.cli.common import fail, handle_errors, parse_fraction, parse_kwargs
from advscale.errors import AdvscaleError

H_RECIPE = "Recipe"
H_DATA = "Data and evaluation"
H_RUN = "Run"


@handle_errors
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (config.json, records.jsonl,"
                             " state.safetensors, last.safetensors); never deleted.",
                             rich_help_panel=H_RUN),
    data: str = typer.Option(None, help="Training data: train.h5, real.h5:1,syn.h5:7 or a "
                             "mixture .json.", rich_help_panel=H_DATA),
    eval_data: str = typer.Option(None, help="Test-set HDF5; its first --eval-n rows are the "
                                  "fixed evaluation subset.", rich_help_panel=H_DATA),
    samples: str = typer.Option(None, metavar="N", help="Training samples to draw, D (not "
                                "epochs), e.g. 20000 or 5e6; required for a new run.",
                                rich_help_panel=H_DATA),
    model: str = typer.Option(None, help="A name from `advscale model list` (wrn-DEPTH-WIDTH, "
                              "resnet18, preactresnet18, ...) or a timm model name.",
                              show_default="wrn-28-10", rich_help_panel=H_RECIPE),
    activation: str = typer.Option(None, help="Activation (silu, relu, gelu) where the model "
                                   "family takes one; an error otherwise.",
                                   show_default="the family's: silu for WRNs, relu for ResNets",
                                   rich_help_panel=H_RECIPE),
    padding: str = typer.Option(None, help="WRN stride-2 padding: dm (DeepMind's (0,1,0,1), "
                                "TF SAME) or symmetric.", show_default="dm",
                                rich_help_panel=H_RECIPE),
    model_kwargs: str = typer.Option(None, "--model-kwargs", metavar="KEY=VALUE[,KEY=VALUE]",
                                     help="Options of the model family (JSON values), e.g. "
                                     "img_size=32,patch_size=4 for a timm ViT; recorded in "
                                     "the checkpoint.", rich_help_panel=H_RECIPE),
    num_classes: int = typer.Option(None, help="Classes.", show_default="10",
                                    rich_help_panel=H_DATA),
    init: str = typer.Option(None, "--init", help="Start from these weights: an advscale "
                             "checkpoint, a run directory or a published .pt (imported on the "
                             "fly); the architecture comes from it.", rich_help_panel=H_RECIPE),
    loss: str = typer.Option(None, help="trades, pgd-at or standard.", show_default="trades",
                             rich_help_panel=H_RECIPE),
    beta: float = typer.Option(None, help="TRADES β.", show_default="5", rich_help_panel=H_RECIPE),
    pgd_steps: int = typer.Option(None, help="Training attack steps.", show_default="10",
                                  rich_help_panel=H_RECIPE),
    norm: str = typer.Option(None, help="Threat model: linf or l2 (training attack and "
                             "evaluation).", show_default="linf", rich_help_panel=H_RECIPE),
    eps: str = typer.Option(None, help="Radius in [0,1] pixel units (L∞, or per-image L2).",
                            show_default="8/255 for linf, 0.5 for l2",
                            rich_help_panel=H_RECIPE),
    step_size: str = typer.Option(None, help="Training attack step, [0,1] pixel units; L2: "
                                  "2.5·eps/steps (Madry et al. 2018).",
                                  show_default="2/255 for linf",
                                  rich_help_panel=H_RECIPE),
    label_smoothing: float = typer.Option(None, help="On the clean CE term.", show_default="0.1",
                                          rich_help_panel=H_RECIPE),
    attack_bn: str = typer.Option(None, help="Batch norm in the training attack: "
                                  "train-no-update (batch statistics, running ones untouched, "
                                  "as the reference) or eval (Zhang et al.).",
                                  show_default="train-no-update",
                                  rich_help_panel=H_RECIPE),
    batch_size: int = typer.Option(None, help="Global batch, images (all ranks together).",
                                   show_default="1024 for D ≤ 10M, else 2048",
                                   rich_help_panel=H_RECIPE),
    lr: float = typer.Option(None, help="Peak learning rate.",
                             show_default="0.3 for D ≤ 10M, 0.2 ≤ 200M, else 0.1",
                             rich_help_panel=H_RECIPE),
    momentum: float = typer.Option(None, help="SGD momentum.", show_default="0.9",
                                   rich_help_panel=H_RECIPE),
    nesterov: bool = typer.Option(None, "--nesterov/--no-nesterov", help="Nesterov momentum.",
                                  show_default="--nesterov", rich_help_panel=H_RECIPE),
    weight_decay: float = typer.Option(None, help="Weight decay, not on norms/biases.",
                                       show_default="5e-4", rich_help_panel=H_RECIPE),
    warmup: float = typer.Option(None, help="One-cycle rise, fraction of steps.",
                                 show_default="0.25",
                                 rich_help_panel=H_RECIPE),
    ema_decay: float = typer.Option(None, help="Weight-averaging (EMA) decay per step.",
                                    show_default="0.995",
                                    rich_help_panel=H_RECIPE),
    ema_warmup: float = typer.Option(None, help="Fraction of steps the EMA copies the weights.",
                                     show_default="0.025", rich_help_panel=H_RECIPE),
    bn_momentum: float = typer.Option(None, help="Batch-norm momentum after its warm-up.",
                                      show_default="0.01",
                                      rich_help_panel=H_RECIPE),
    bn_schedule: str = typer.Option(None, help="Batch-norm momentum schedule: advscale (1, then "
                                    "max(bn-momentum, 9/(10+t))) or reference (1, then "
                                    "bn-momentum; DM-Improves-AT).", show_default="advscale",
                                    rich_help_panel=H_RECIPE),
    augment: bool = typer.Option(None, "--augment/--no-augment", help="Random crop (pad 4) + flip.",
                                 show_default="--augment", rich_help_panel=H_RECIPE),
    eval_n: int = typer.Option(None, help="Evaluation images.", show_default="1024",
                               rich_help_panel=H_DATA),
    eval_every: int = typer.Option(None, help="Samples between evaluations (0: only at the "
                                   "end).", show_default="D/10", rich_help_panel=H_DATA),
    eval_steps: int = typer.Option(None, help="PGD steps of the evaluation.", show_default="40",
                                   rich_help_panel=H_DATA),
    eval_loss: str = typer.Option(None, help="Evaluation PGD loss: cw (clamped CW, the "
                                  "reference's), cw-margin (unclamped) or ce.", show_default="cw",
                                  rich_help_panel=H_DATA),
    eval_batch_size: int = typer.Option(None, help="Evaluation batch, images.", show_default="256",
                                        rich_help_panel=H_DATA),
    checkpoint_every: int = typer.Option(None, help="Samples between checkpoints.",
                                         show_default="at each evaluation", rich_help_panel=H_RUN),
    seed: int = typer.Option(None, help="Seed of data order, init and attack noise.",
                             show_default="0",
                             rich_help_panel=H_RUN),
    run_id: str = typer.Option(None, help="Run id in the records.", show_default="generated",
                               rich_help_panel=H_RUN),
    device: str = typer.Option(None, help="auto, cpu, cuda or cuda:N.", show_default="auto",
                               rich_help_panel=H_RUN),
    amp: bool = typer.Option(None, "--amp/--no-amp", help="bf16 autocast.", show_default="on CUDA",
                             rich_help_panel=H_RUN),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last",
                                       help="Channels-last memory.",
                                       show_default="--channels-last",
                                       rich_help_panel=H_RUN),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the model.",
                                 show_default="--no-compile",
                                 rich_help_panel=H_RUN),
    workers: int = typer.Option(None, help="DataLoader workers.",
                                show_default="0 on CPU, 4 on CUDA",
                                rich_help_panel=H_RUN),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bar on stderr.",
                                  show_default="--progress", rich_help_panel=H_RUN),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last "
                                "checkpoint (options default to its config.json).",
                                rich_help_panel=H_RUN),
) -> None:
    """Adversarially train a model for --samples samples; train.eval JSONL records on stdout.

    Runs unchanged under torchrun --nproc_per_node=K (DDP; only rank 0 writes).
    """
    from advscale.training.flops import parse_samples
    from advscale.training.loop import train as run_training
    from advscale.training.rundir import RunDir, resolve_run_config

    _check_start(RunDir(out).has_run(), out, resume, data, samples)

    overrides = {
        "data": data, "eval_data": eval_data, "samples": parse_samples(samples),
        "model": model, "activation": activation, "padding": padding,
        "model_kwargs": parse_kwargs(model_kwargs) if model_kwargs is not None else None,
        "num_classes": num_classes, "init": init, "loss": loss, "beta": beta,
        "pgd_steps": pgd_steps, "norm": norm,
        "eps": None if eps is None else parse_fraction(eps, "--eps"),
        "step_size": None if step_size is None else parse_fraction(step_size, "--step-size"),
        "label_smoothing": label_smoothing, "attack_bn": attack_bn, "batch_size": batch_size,
        "lr": lr,
        "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
        "warmup": warmup, "ema_decay": ema_decay, "ema_warmup": ema_warmup,
        "bn_momentum": bn_momentum, "bn_schedule": bn_schedule, "augment": augment,
        "eval_n": eval_n,
        "eval_every": eval_every, "eval_steps": eval_steps,
        "eval_loss": eval_loss, "eval_batch_size": eval_batch_size,
        "checkpoint_every": checkpoint_every, "seed": seed, "run_id": run_id, "device": device,
        "amp": amp, "channels_last": channels_last, "compile": compile, "workers": workers,
        "progress": progress,
    }
    cfg, _ = resolve_run_config(out, overrides, resume)
    try:
        run_training(cfg, out, resume=resume)
    except KeyboardInterrupt:
        if not RunDir(out).has_run():
            raise fail("interrupted before the first checkpoint; nothing was kept", 130) \
                from None
        raise fail(f"interrupted; {out} keeps its last checkpoint, and `advscale train --out "
                   f"{out} --resume` continues from it", 130) from None


def _check_start(has_run: bool, out: Path, resume: bool, data: str | None,
                 samples: str | None) -> None:
    """Name what is missing when no run can be continued and a new one lacks its inputs."""
    if has_run and resume:
        return
    if resume and data is None:
        raise AdvscaleError(f"--resume: {out} holds no run to continue (no config.json); "
                            "start one with --data, --eval-data and --samples")
    missing = [name for name, v in (("--data", data), ("--samples", samples)) if v is None]
    if missing and not has_run:
        raise AdvscaleError(f"a new run needs {' and '.join(missing)} (e.g. --data train.h5 "
                            "--eval-data test.h5 --samples 20000)")
