"""``advscale model``: the model registry, importing published checkpoints, checkpoint info.

A thin adapter over :func:`advscale.api.model`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from advscale import api
from advscale.cli.common import handle_errors
from advscale.cli.help import App
from advscale.cli.shared import common
from advscale.records import write_record

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
        for rec in api.model("list", pattern, params=True):
            write_record(rec)
        return
    for name in api.model("list", pattern):
        typer.echo(name)


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
    robustbench_id: str = typer.Option(
        None, "--robustbench-id", help="A RobustBench CIFAR-10 Linf id from the built-in table "
        "(top 15 + XCiTs; docs/models.md); read from a file named <id>.pt when not given."),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="Import a RobustBench file whose keys differ from its "
        "layout: missing tensors keep a fresh initialisation, unexpected ones are dropped; "
        "the metadata lists both."),
    force: bool = common("force"),
) -> None:
    """Convert a published WRN checkpoint to an advscale one (docs/models.md); prints a
    model.info record on stdout. Nothing is unpickled but tensors and plain containers."""
    write_record(api.model("import", src, out, fmt=fmt, arch=arch, activation=activation,
                           weights=weights, mean=mean, std=std, force=force,
                           robustbench_id=robustbench_id, allow_missing=allow_missing))


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
    write_record(api.model("info", ckpt, model_kwargs=model_kwargs, num_classes=num_classes))
