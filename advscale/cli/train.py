"""``advscale train``: adversarial training by samples, with records, checkpoints and resume.

A thin adapter over :func:`advscale.api.train`: its options are generated from
:class:`~advscale.training.config.TrainConfig`'s fields (flag, help, unit and default are
declared there once). Options left out stay unset, so ``--resume`` takes everything from the
run's ``config.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from advscale import api
from advscale.cli.common import fail, handle_errors
from advscale.cli.requests import request_command


@handle_errors
@request_command(api.TrainConfig)
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (config.json, records.jsonl,"
                             " state.safetensors, last.safetensors); never deleted.",
                             rich_help_panel="Run"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last "
                                "checkpoint (options default to its config.json).",
                                rich_help_panel="Run"),
    *,
    given: dict[str, Any],
) -> None:
    """Adversarially train a model for --samples samples; train.eval JSONL records on stdout.

    Runs unchanged under torchrun --nproc_per_node=K (DDP; only rank 0 writes).
    """
    try:
        api.train(given.pop("data", None), out, resume=resume, stdout=sys.stdout, **given)
    except KeyboardInterrupt:
        if not api.has_run(out):
            raise fail("interrupted before the first checkpoint; nothing was kept", 130) \
                from None
        raise fail(f"interrupted; {out} keeps its last checkpoint, and `advscale train --out "
                   f"{out} --resume` continues from it", 130) from None
