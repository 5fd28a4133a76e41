"""A run directory: ``config.json``, ``records.jsonl``, ``state.safetensors``, ``last.safetensors``.

advscale never deletes or empties a run directory. A new run needs a missing or empty
directory; ``--resume`` continues the run whose ``config.json`` is there (from its
``state.safetensors`` when one exists, else from the start).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from advscale.core.jsonl import repair_tail
from advscale.errors import AdvscaleError
from advscale.models.checkpoint import LAST_NAME
from advscale.records import parse_line
from advscale.training.config import (
    TrainConfig,
    apply_init,
    config_differences,
    merge_for_resume,
)
from advscale.training.state import STATE_NAME

CONFIG_NAME = "config.json"
RECORDS_NAME = "records.jsonl"


class RunDir:
    """Paths of one run directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def config(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def records(self) -> Path:
        return self.path / RECORDS_NAME

    @property
    def state(self) -> Path:
        return self.path / STATE_NAME

    @property
    def last(self) -> Path:
        return self.path / LAST_NAME

    def is_empty(self) -> bool:
        return not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))

    def has_run(self) -> bool:
        return self.config.is_file()

    def records_on_disk(self) -> int:
        """Complete lines in ``records.jsonl`` (a torn last line from a crash is not counted)."""
        if not self.records.is_file():
            return 0
        data = self.records.read_bytes()
        return data.count(b"\n")

    def drop_torn_record(self) -> None:
        """Cut an incomplete last line (a crash mid-append) off ``records.jsonl``."""
        repair_tail(self.records, parse_line)


def resolve_run_config(
    out: str | os.PathLike[str], overrides: dict[str, Any], resume: bool
) -> tuple[TrainConfig, bool]:
    """The config for ``advscale train`` and whether it continues an existing run.

    ``overrides`` are the options given (None values are ignored). Without ``resume`` the
    directory must be missing or empty; with it, the saved config is used and options given
    again must agree with it (runtime options may change).
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    run = RunDir(out)
    if run.path.exists() and not run.path.is_dir():
        raise AdvscaleError(f"--out {run.path}: exists and is not a directory")
    if resume and run.has_run():
        cfg = merge_for_resume(TrainConfig.load(run.config), given)
        return cfg.resolved(), True
    if not run.is_empty():
        if resume:
            raise AdvscaleError(f"--out {run.path}: not empty and holds no advscale run "
                                f"({CONFIG_NAME}); nothing to resume")
        raise AdvscaleError(
            f"--out {run.path} already exists and is not empty; pass --resume to continue its "
            "run, or choose a new directory (advscale never deletes a run directory)"
        )
    cfg = TrainConfig.from_dict(apply_init(given)).resolved()
    return cfg, False


def check_resumable(run: RunDir, cfg: TrainConfig) -> TrainConfig:
    """For a library-level resume: ``cfg`` must match the saved run (runtime options aside).
    Returns the saved config with ``cfg``'s runtime options."""
    saved = TrainConfig.load(run.config)
    probe = cfg.resolved()
    if probe.run_id is None:
        probe.run_id = saved.run_id
    diff = config_differences(saved, probe)
    if diff:
        raise AdvscaleError(f"--resume: settings differ from the saved run: {', '.join(diff)}")
    return merge_for_resume(saved, {k: getattr(cfg, k) for k in ("workers", "compile",
                                                                 "progress", "log_every",
                                                                 "device")})


def new_run_id(cfg: TrainConfig) -> str:
    """``<model>-<loss>-<12 hex digits>``: unique per run, readable in tables."""
    return f"{cfg.model}-{cfg.loss}-{uuid.uuid4().hex[:12]}"
