"""A run directory: ``config.json``, ``records.jsonl``, ``state.safetensors``, ``last.safetensors``.

advscale never deletes or empties a run directory that holds a checkpoint. A new run needs a
missing or empty directory; ``--resume`` continues the run whose ``config.json`` is there (from
its ``state.safetensors`` when one exists, else from the start). While a run is written its
directory is locked (``.lock``, :mod:`advscale.core.locks`): a second ``train`` on it fails at
once. A new run that fails before its first checkpoint removes what it wrote (and the directory
if it made it), so the same command can simply be run again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from advscale.core.jsonl import repair_tail
from advscale.core.locks import hold_lock
from advscale.core.options import parse_fields
from advscale.errors import AdvscaleError
from advscale.models.checkpoint import LAST_NAME
from advscale.records import parse_line
from advscale.training.config import (
    TrainConfig,
    apply_init,
    merge_for_resume,
)
from advscale.training.state import STATE_NAME

CONFIG_NAME = "config.json"
RECORDS_NAME = "records.jsonl"
LOCK_NAME = ".lock"


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
        """Missing, or a directory holding nothing but (a stale) lock file."""
        return not self.path.exists() or (
            self.path.is_dir() and all(p.name == LOCK_NAME for p in self.path.iterdir()))

    def has_checkpoint(self) -> bool:
        return self.state.is_file() or self.last.is_file()

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


def _not_empty_error(run: RunDir) -> AdvscaleError:
    return AdvscaleError(
        f"out {run.path} already exists and is not empty; resume its run, or choose a new "
        "directory (advscale never deletes a run directory)", field="out")


@contextlib.contextmanager
def claim_run_dir(run: RunDir, resuming: bool, is_main: bool = True) -> Iterator[None]:
    """Hold ``run``'s lock for the body (rank 0 only); a new run that fails before its first
    checkpoint leaves the directory as it found it (removed when this call made it)."""
    if not is_main:
        yield
        return
    try:
        run.path.mkdir(parents=True)
        created = True
    except FileExistsError:
        created = False
    except OSError as e:
        raise AdvscaleError(f"run directory {run.path}: cannot create it ({e.strerror})",
                            field="out") from None
    try:
        with hold_lock(run.path, f"run directory {run.path}", lock=run.path / LOCK_NAME):
            if not resuming and not run.is_empty():
                raise _not_empty_error(run)  # another run finished here since the check
            try:
                yield
            except BaseException:
                if not resuming and not run.has_checkpoint():
                    _empty_out(run)
                raise
    finally:
        if created:
            with contextlib.suppress(OSError):
                run.path.rmdir()  # only when empty: a failed new run's, or a lock refusal's


def _empty_out(run: RunDir) -> None:
    """Remove what a failed new run wrote (the lock file stays until released)."""
    for p in run.path.iterdir():
        if p.name == LOCK_NAME:
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def resolve_run_config(
    out: str | os.PathLike[str], options: dict[str, Any], resume: bool
) -> tuple[TrainConfig, bool]:
    """The one run-directory rule: the config of a run in ``out`` and whether it continues.

    ``options`` are the :class:`TrainConfig` fields given (None values are ignored; text for a
    field with a named parser, e.g. ``samples="5e6"`` or ``eps="8/255"``, is parsed). Without
    ``resume`` the directory must be missing or empty; with it, the saved ``config.json`` is used
    and options given again must agree with it, runtime options (:data:`RUNTIME_KEYS`) aside.
    The command line and :func:`advscale.api.train` both come here.
    """
    given = parse_fields(TrainConfig, {k: v for k, v in options.items() if v is not None})
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise AdvscaleError(f"unknown training setting(s): {', '.join(unknown)} (see "
                            "TrainConfig)", field=unknown[0])
    run = RunDir(out)
    if run.path.exists() and not run.path.is_dir():
        raise AdvscaleError(f"out {run.path}: exists and is not a directory", field="out")
    if resume and run.has_run():
        cfg = merge_for_resume(TrainConfig.load(run.config), given)
        return cfg.resolved(), True
    if not run.is_empty():
        if resume:
            raise AdvscaleError(f"out {run.path}: not empty and holds no advscale run "
                                f"({CONFIG_NAME}); nothing to resume", field="out")
        raise _not_empty_error(run)
    _check_new(run.path, given, resume)
    return TrainConfig.from_dict(apply_init(given)).resolved(), False


def _check_new(out: Path, given: dict[str, Any], resume: bool) -> None:
    """Name what a new run lacks (and that there was nothing to resume)."""
    if resume and "data" not in given:
        raise AdvscaleError(f"resume: {out} holds no run to continue (no {CONFIG_NAME}); start "
                            "one with data, eval_data and samples", field="data,eval_data,samples")
    missing = [name for name in ("data", "samples") if name not in given]
    if missing:
        raise AdvscaleError(f"a new run needs {' and '.join(missing)} (e.g. data train.h5, "
                            "eval_data test.h5, samples 20000)", field=",".join(missing))


def check_resumable(run: RunDir, cfg: TrainConfig) -> TrainConfig:
    """The saved run's config with ``cfg``'s runtime options; AdvscaleError when ``cfg`` would
    change the run's results (the same rule as :func:`resolve_run_config`)."""
    saved = TrainConfig.load(run.config)
    probe = cfg.resolved()
    if probe.run_id is None:
        probe.run_id = saved.run_id
    return merge_for_resume(saved, probe.to_dict()).resolved()


def new_run_id(cfg: TrainConfig) -> str:
    """``<model>-<loss>-<12 hex digits>``: unique per run, readable in tables."""
    return f"{cfg.model}-{cfg.loss}-{uuid.uuid4().hex[:12]}"
