"""``advscale attack`` under ``torchrun``: the chunks split across ranks, one merged record.

``torchrun`` (one node or many) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Each rank
joins a process group (NCCL on CUDA, gloo on CPU), loads its own copy of the model on
``cuda:LOCAL_RANK`` (or the CPU; no DataParallel) and attacks the chunks ``c`` with
``c % WORLD_SIZE == RANK`` — the ``shard=(RANK, WORLD_SIZE)`` of
:func:`advscale.attacks.evaluate.attack_checkpoints`. Every rank appends its finished chunks to
its own resume state, ``STATE.rank{r}-of-{k}``, so a killed job relaunched with the same world
size resumes each rank where it stopped. The ranks then exchange their chunk records through the
process group (no shared file system needed) and rank 0 merges them
(:func:`advscale.attacks.merge.merge_records`) into one final ``attack`` record per checkpoint:
its accuracies, per-chunk counts and settings key equal a single-process run's, since a chunk's
result depends only on its images and the settings. With ``save_adv`` each rank's per-image
results travel the same way and rank 0 writes the one adversarial-image file. Only rank 0
returns records (the CLI writes them to stdout) and appends to ``results``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from advscale.attacks.advfile import read_adv_file, read_adv_settings, write_adv_file
from advscale.attacks.evaluate import attack_checkpoints
from advscale.attacks.inputs import (
    Log,
    count_test_images,
    info_log,
    load_test_data,
    resolve_targets,
)
from advscale.attacks.merge import merge_records
from advscale.attacks.settings import AttackSettings, package_of, settings_config, settings_key
from advscale.attacks.statefile import find_result
from advscale.core.devices import resolve_device
from advscale.core.locks import hold_locks
from advscale.errors import AdvscaleError


def torchrun_world() -> int:
    """``WORLD_SIZE`` of a torchrun launch (1 outside one)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def rank_path(path: str | os.PathLike[str], rank: int, world: int) -> Path:
    """The per-rank file of ``path``: ``PATH.rank{rank}-of-{world}``."""
    return Path(f"{os.fspath(path)}.rank{rank}-of-{world}")


@contextlib.contextmanager
def _process_group(device: torch.device, rank: int, world: int) -> Iterator[None]:
    """Join torchrun's process group (NCCL on CUDA, gloo otherwise) for the block's duration."""
    if dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank,
                            world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def _quiet_unless(main: bool) -> Iterator[None]:
    """Progress lines from rank 0 only: other ranks log warnings and errors."""
    logger = logging.getLogger("advscale")
    old = logger.level
    if not main:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


def _adv_arrays(path: Path | None) -> dict[str, Any] | None:
    """This rank's per-image results (its adversarial-image file, then removed)."""
    if path is None or not path.is_file():
        return None
    doc = read_adv_file(path)
    path.unlink()
    return {k: doc[k] for k in ("index", "pred_clean", "pred_adv", "image_adv", "attack")}


def _write_merged_adv(path: str | os.PathLike[str], pieces: Sequence[dict[str, Any] | None],
                      data_path: str | os.PathLike[str], s: AttackSettings,
                      record: dict[str, Any]) -> None:
    """Rank 0: one adversarial-image file from every rank's rows, in test-row order."""
    got = [p for p in pieces if p is not None]
    index = np.concatenate([p["index"] for p in got]) if got else np.zeros(0, np.int64)
    order = np.argsort(index, kind="stable")

    def cat(k: str) -> np.ndarray:
        return np.concatenate([np.asarray(p[k]) for p in got])[order]

    names = [n for p in got for n in p["attack"]]
    names = [names[i] for i in order]
    index, pred_clean, pred_adv, image_adv = (index[order], cat("pred_clean"), cat("pred_adv"),
                                              cat("image_adv"))
    parts = []
    for c in range(s.chunks):
        start, stop = s.chunk_bounds(c)
        rows = np.nonzero((index >= start) & (index < stop))[0]
        if len(rows):
            parts.append(SimpleNamespace(start=start, stop=stop, pred_clean=pred_clean[rows],
                                         pred_adv=pred_adv[rows], x_adv=image_adv[rows],
                                         broken_by=[names[i] for i in rows]))
    data = load_test_data(data_path, int(s.n))  # type: ignore[arg-type]
    write_adv_file(path, parts, data, record, s)


def _split_done(specs: Sequence[str | os.PathLike[str]], data_path: str | os.PathLike[str],
                s: AttackSettings, results: str | os.PathLike[str] | None, force: bool,
                save_adv: str | os.PathLike[str] | None, log: Log
                ) -> tuple[list[str], list[dict[str, Any]]]:
    """(checkpoints still to evaluate, final records already in ``results``): what a
    single-process run skips, decided alike on every rank (``results`` is only read here)."""
    targets = resolve_targets(specs, log)
    if results is None or force:
        return [str(t.path) for t in targets], []
    data_sha = load_test_data(data_path, int(s.n)).sha256  # type: ignore[arg-type]
    package, version = package_of(s.attack)
    todo, done = [], []
    for t in targets:
        key = settings_key(t.sha256, data_sha, s, package, version)
        prior = find_result(results, key)
        if prior is not None and (save_adv is None
                                  or read_adv_settings(save_adv).get("settings_key") == key):
            log(f"advscale attack: {t.path}: already evaluated in {results} (key {key}); "
                "skipping (use --force to re-run)")
            done.append(prior)
        else:
            todo.append(str(t.path))
    return todo, done


def attack_torchrun(
    specs: Sequence[str | os.PathLike[str]],
    data_path: str | os.PathLike[str],
    settings: AttackSettings,
    *,
    device: str = "auto",
    state: str | os.PathLike[str] | None = None,
    results: str | os.PathLike[str] | None = None,
    force: bool = False,
    save_adv: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    log: Log = info_log,
) -> list[dict[str, Any]]:
    """Evaluate ``specs`` as one rank of a torchrun job; rank 0 returns the final records.

    ``state`` is required (each rank resumes from ``STATE.rank{r}-of-{k}``). Other ranks return
    ``[]``. Raises AdvscaleError (naming the field) before joining the group on bad input.
    """
    rank, world = int(os.environ.get("RANK", "0")), torchrun_world()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if state is None:
        raise AdvscaleError("under torchrun each rank keeps its own resume state: give a state "
                            "file (rank r appends to STATE.rank{r}-of-{k})", field="state")
    dev = resolve_device(device, local_rank=local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    resolved = settings.resolved(count_test_images(data_path))
    adv_rank = None if save_adv is None else rank_path(save_adv, rank, world)
    quiet: Log = log if rank == 0 else (lambda m: None)
    # rank 0 is the one writer of results and save_adv: it holds their locks for the whole job
    with hold_locks([results, save_adv] if rank == 0 else [], "attack output"), \
            _process_group(dev, rank, world), _quiet_unless(rank == 0):
        todo, recs = _split_done(specs, data_path, resolved, results, force, save_adv, quiet)
        if todo:
            recs += attack_checkpoints(
                todo, data_path, resolved, device=dev, state=rank_path(state, rank, world),
                force=force, shard=(rank, world), save_adv=adv_rank, verbose=verbose,
                log=quiet)
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, (recs, _adv_arrays(adv_rank)))
        out: list[dict[str, Any]] = []
        if rank == 0:
            config = settings_config(resolved, device=str(dev), shard="0/1", world_size=world)
            out = merge_records([r for rs, _ in gathered for r in rs], results=results,
                                config=config, force=force, log=log)
            if save_adv is not None and out:
                _write_merged_adv(save_adv, [a for _, a in gathered], data_path, resolved,
                                  out[0])
        dist.barrier()
    return out
