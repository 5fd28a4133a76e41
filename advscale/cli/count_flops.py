"""``advscale count-flops``: FLOPs of a model and a training recipe, counted on the meta device."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors, parse_kwargs
from advscale.errors import AdvscaleError
from advscale.records import write_record


@handle_errors
def count_flops(
    models: list[str] = typer.Option(
        None, "--model", "-m", help="Model name (wrn-28-10, any timm name); repeat for several."
    ),
    models_file: Path = typer.Option(
        None, "--models-file", help="File of model names, one a line ('#' comments; '-' stdin)."
    ),
    loss: str = typer.Option("trades", help="Training recipe: trades, pgd-at or standard."),
    pgd_steps: int = typer.Option(10, "--pgd-steps", help="Training attack steps."),
    samples: str = typer.Option(
        None, "--samples", "-D", help="Training samples D (e.g. 5e7) for total train_flops."
    ),
    batch_size: int = typer.Option(2, "--batch-size", help="Batch size of the counted step."),
    activation: str = typer.Option(None, help="Activation, where the model family takes one "
                                   "(does not change the count).", show_default="the family's"),
    model_kwargs: str = typer.Option(
        None, "--model-kwargs", metavar="KEY=VALUE[,KEY=VALUE]",
        help="Options of the model family (JSON values), e.g. img_size=32,patch_size=4 for a "
        "timm ViT at 32 px."),
    num_classes: int = typer.Option(10, "--num-classes", help="Classifier outputs."),
    check_constant: float = typer.Option(
        None, "--check-constant",
        help="Report the relative error of FLOPs ≈ C·N·D for this C (the paper's is 7822).",
    ),
    method: str = typer.Option(
        "auto", help="Counting method: auto, direct, linear (see docs/energy.md#count-flops)."
    ),
    robustbench_id: str = typer.Option(
        None, "--robustbench-id", help="Count a RobustBench leaderboard model at full size "
        "(docs/models.md); the record adds its number_forward_passes."),
    annotate: bool = typer.Option(
        False, "--annotate",
        help="Read JSONL records on stdin; add missing params/train_flops_per_sample/"
        "train_flops from each record's model and recipe; pass everything else through.",
    ),
) -> None:
    """Count forward and training FLOPs per sample; one `flops` JSONL record per model."""
    from advscale.training import flops as fl  # torch: imported when the command runs

    if method not in fl.METHODS:
        raise AdvscaleError(f"--method {method!r}: choose from {', '.join(fl.METHODS)}")
    if annotate:
        if models or models_file:
            raise AdvscaleError("--annotate reads records on stdin; do not also give --model")
        seen, changed = fl.annotate_lines(sys.stdin, sys.stdout, "<stdin>", method=method)
        if seen and not changed:
            err(f"count-flops: all {seen} records already had their FLOPs fields (train fills "
                "them) or name no model and recipe; passed through unchanged")
        else:
            err(f"count-flops: annotated {changed} of {seen} records")
        return
    names = list(models or [])
    extra: dict[str, object] = {}
    if robustbench_id is not None:
        from advscale.models.robustbench import LEADERBOARD, leaderboard_id, registry_name

        entry = LEADERBOARD[str(leaderboard_id("", robustbench_id))]
        names.append(registry_name(entry))
        extra = {"robustbench_id": entry.id, "number_forward_passes": entry.forward_passes}
    if models_file is not None:
        if str(models_file) == "-":
            names += list(fl.read_model_names(sys.stdin))
        elif not models_file.is_file():
            raise AdvscaleError(f"{models_file}: no such models file")
        else:
            names += list(fl.read_model_names(models_file.read_text().splitlines()))
    if not names:
        raise AdvscaleError("give --model NAME (repeatable), --models-file FILE, or --annotate")
    d = fl.parse_samples(samples)
    kwargs = parse_kwargs(model_kwargs)
    for name in names:
        rec = fl.flops_record(name, loss, pgd_steps, samples=d, activation=activation,
                              num_classes=num_classes, batch_size=batch_size, method=method,
                              check_constant=check_constant, model_kwargs=kwargs)
        rec.update(extra)
        err(fl.summary_line(rec))
        write_record(rec)
