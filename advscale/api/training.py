"""``advscale.train``: one adversarial-training run, new or resumed (torch-free at import)."""

from __future__ import annotations

import io
import os
from typing import IO, Any

from advscale.training.config import TrainConfig

PathLike = str | os.PathLike[str]

__all__ = ["TrainConfig", "has_run", "train"]


def train(data: PathLike | None, out: PathLike, *, resume: bool = False,
          stdout: IO[str] | None = None, command: str | None = None,
          **options: Any) -> list[dict[str, Any]]:
    """Train (or with ``resume`` continue) one run in directory ``out``; its new records.

    ``options`` are :class:`~advscale.training.config.TrainConfig` fields: ``eval_data``,
    ``samples`` (D, training samples seen; ``5e6`` as text works), ``model`` (``wrn-28-10``),
    ``loss`` (``trades``), ``pgd_steps``, ``eval_n``, ``batch_size``, ``lr``, ``seed``, ``init``
    (start from a checkpoint, published ``.pt`` files included), ... A run directory follows one
    rule, whichever front door started it: without ``resume`` it must be missing or empty; with
    ``resume`` its ``config.json`` gives every setting, and ``data`` and options given again must
    agree with it (runtime options such as ``device``, ``workers``, ``progress`` may change).
    The records (``train.eval``, one per evaluation) are also in ``out/records.jsonl`` and go to
    ``stdout`` when given (the command line passes ``sys.stdout``); the EMA checkpoint is
    ``out/last.safetensors``.
    """
    from advscale.training.loop import train as run_training
    from advscale.training.rundir import resolve_run_config

    given = {**options, "data": None if data is None else os.fspath(data)}
    cfg, resuming = resolve_run_config(out, given, resume)
    return run_training(cfg, out, resume=resuming,
                        stdout=io.StringIO() if stdout is None else stdout, command=command)


def has_run(out: PathLike) -> bool:
    """Whether directory ``out`` holds a training run (its ``config.json``) to resume."""
    from advscale.training.rundir import RunDir

    return RunDir(out).has_run()
