"""``advscale model``: the model registry, importing published checkpoints, checkpoint info."""

from __future__ import annotations

from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors, parse_kwargs
from advscale.cli.help import App
from advscale.errors import AdvscaleError
from advscale.records import make_record, write_record

app = App(help="Models: registered names, importing published checkpoints, info.",
                  no_args_is_help=True)


@app.command("list")
@handle_errors
def list_cmd(
    pattern: str = typer.Argument("*", help="Shell-style filter, e.g. 'wrn-28-*'."),
    params: bool = typer.Option(False, "--params", help="One model.arch record per registered "
                                "name (and each family's standard sizes): N and forward FLOPs "
                                "per 32×32 image, counted on the meta device."),
) -> None:
    """Print registered model names, one a line (families as patterns, e.g. wrn-D-W).

    Any timm model name works too (`advscale train --model vit_tiny_patch16_224 --model-kwargs
    img_size=32,patch_size=4`); timm's own list is `python -c "import timm;
    print(timm.list_models())"`.
    """
    if params:
        from advscale.models.summary import describe_all  # torch: only when the command runs

        for payload in describe_all(pattern):
            err(f"{payload['model']:<16} N={payload['params']:>13,}  "
                f"{payload['forward_flops_per_image'] / 1e9:10.3f} GFLOPs/image")
            write_record(make_record("model.arch", payload,
                                     command=f"advscale model list {pattern} --params"))
        return
    from advscale.models import list_models  # torch: only when the command runs

    for name in list_models(pattern):
        typer.echo(name)


def _triple(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise AdvscaleError(f"{what} {text!r}: give three comma-separated numbers, e.g. "
                            "0.4914,0.4822,0.4465")
    return values


@app.command("import")
@handle_errors
def import_cmd(
    src: Path = typer.Argument(..., help="A published checkpoint (.pt/.pth/.safetensors)."),
    out: Path = typer.Option(..., "-o", "--out", help="The advscale checkpoint to write."),
    fmt: str = typer.Option("auto", "--format",
                            help="auto, dm, llnl, rade, timm-adv or robustbench."),
    arch: str = typer.Option(None, "--arch", help="Check the inferred WRN, e.g. wrn-70-16."),
    activation: str = typer.Option(None, "--activation",
                                   help="silu, relu or gelu (weights cannot say).",
                                   show_default="silu for DeepMind-style WRNs, relu for "
                                   "TRADES-style"),
    weights: str = typer.Option("averaged", "--weights",
                                help="averaged (EMA/WA) or unaveraged, when the file "
                                "holds both."),
    mean: str = typer.Option(None, "--mean", help="Override the input mean, 'R,G,B'."),
    std: str = typer.Option(None, "--std", help="Override the input std, 'R,G,B'."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
    robustbench_id: str = typer.Option(
        None, "--robustbench-id", help="A RobustBench CIFAR-10 Linf id from the built-in table "
        "(top 15 + XCiTs; docs/models.md); read from a file named <id>.pt when not given."),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="Import a RobustBench file whose keys differ from its "
        "layout: missing tensors keep a fresh initialisation, unexpected ones are dropped; "
        "the metadata lists both."),
) -> None:
    """Convert a published WRN checkpoint to an advscale one (docs/models.md); prints a
    model.info record on stdout. Nothing is unpickled but tensors and plain containers."""
    from advscale.core.outputs import check_output
    from advscale.models.checkpoint import checkpoint_info, import_checkpoint
    from advscale.models.robustbench import import_leaderboard_checkpoint, leaderboard_id

    check_output(out, [src], force=force)
    if fmt in ("auto", "robustbench") and leaderboard_id(src, robustbench_id) is not None:
        path, meta = import_leaderboard_checkpoint(src, out, robustbench_id, allow_missing)
        dropped = meta["missing_keys"] or meta["dropped_keys"]
        err(f"{src} (RobustBench {meta['robustbench_id']}, layout {meta['robustbench_layout']}) "
            f"→ {path}: {meta['model']}, {meta['params']:,} parameters"
            + (f"; missing {meta['missing_keys']}, dropped {meta['dropped_keys']}"
               if dropped else ""))
        write_record(make_record("model.info", checkpoint_info(path),
                                 command=f"advscale model import {src} -o {out}"))
        return
    if allow_missing:
        raise AdvscaleError("--allow-missing applies to RobustBench leaderboard files "
                            "(--robustbench-id)")
    path, meta = import_checkpoint(src, out, format=fmt, arch=arch, activation=activation,
                                   weights=weights, mean=_triple(mean, "--mean"),
                                   std=_triple(std, "--std"))
    err(f"{src} ({meta['source_format']}) → {path}: {meta['model']}, {meta['params']:,} "
        f"parameters, activation {meta['activation']}, padding {meta['padding']}")
    write_record(make_record("model.info", checkpoint_info(path),
                             command=f"advscale model import {src} -o {out}"))


@app.command("info")
@handle_errors
def info_cmd(
    ckpt: Path = typer.Argument(..., help="A checkpoint, run directory or published file; or "
                                "a model name (registered or timm)."),
    model_kwargs: str = typer.Option(None, "--model-kwargs", metavar="KEY=VALUE[,KEY=VALUE]",
                                     help="For a model name: options of its family."),
    num_classes: int = typer.Option(10, "--num-classes", help="For a model name: classes."),
) -> None:
    """Print one model.info record (a checkpoint: architecture, parameters, activation,
    source, padding, whether the weights are EMA) or, for a model name, one model.arch record
    (N and forward FLOPs per 32×32 image)."""
    if not ckpt.exists() and ckpt.suffix not in (".pt", ".pth", ".safetensors"):
        from advscale.models.summary import describe

        kwargs = parse_kwargs(model_kwargs)
        payload = describe(str(ckpt), kwargs, num_classes=num_classes)
        command = f"advscale model info {ckpt} --num-classes {num_classes}" + (
            f" --model-kwargs {model_kwargs}" if model_kwargs else "")
        write_record(make_record("model.arch", payload, command=command,
                                 config={"model_kwargs": kwargs, "num_classes": num_classes}))
        return
    from advscale.models.checkpoint import checkpoint_info

    write_record(make_record("model.info", checkpoint_info(ckpt),
                             command=f"advscale model info {ckpt}"))
