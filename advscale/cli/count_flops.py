"""``advscale count-flops``: FLOPs of a model and a training recipe, counted on the meta device.

A thin adapter over :func:`advscale.api.count_flops`; the recipe's options are
:class:`~advscale.training.config.TrainConfig`'s fields (one declaration, one default).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from advscale import api
from advscale.cli.common import handle_errors
from advscale.cli.requests import request_command
from advscale.records import write_record

RECIPE = ("loss", "pgd_steps", "samples", "activation", "num_classes", "model_kwargs")
"""TrainConfig fields that are count-flops options too."""


@handle_errors
@request_command(api.TrainConfig, include=RECIPE)
def count_flops(
    models: list[str] = typer.Option(
        None, "--model", "-m", help="Model name (wrn-28-10, any timm name); repeat for several."
    ),
    models_file: Path = typer.Option(
        None, "--models-file", help="File of model names, one a line ('#' comments; '-' stdin)."
    ),
    batch_size: int = typer.Option(2, "--batch-size", help="Batch size of the counted step."),
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
    *,
    given: dict[str, Any],
) -> None:
    """Count forward and training FLOPs per sample; one `flops` JSONL record per model."""
    api.count_flops(list(models or []), models_file=models_file, batch_size=batch_size,
                    check_constant=check_constant, method=method, emit=write_record,
                    annotate=sys.stdin if annotate else None, out=sys.stdout,
                    robustbench_id=robustbench_id, **given)
