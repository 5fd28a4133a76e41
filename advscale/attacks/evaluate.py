"""Chunked, resumable, shardable robustness evaluation of checkpoints (``advscale attack``).

The first ``n`` test images, in file order, are split into fixed chunks of ``chunk_size``
images, each attacked on its own in batches of ``batch_size`` (:mod:`advscale.attacks.chunks`).
A chunk's result depends only on its images and the settings, never on which process ran it or
on what ran before; for PGD not even on batch or chunk size (the random start of test row ``i``
comes from ``(seed, i)``, :mod:`advscale.attacks.robustness`, the same service ``train.eval``
uses). That gives:

* **resume**: each finished chunk appends an ``attack.chunk`` record to a state file
  (:mod:`advscale.attacks.statefile`); a killed run skips the chunks already there and its final
  ``attack`` record equals an uninterrupted run's (``wall_s`` is the sum of the chunks' seconds);
* **shards**: ``shard=(i, k)`` attacks chunks ``c`` with ``c % k == i`` and returns their chunk
  records; :func:`advscale.attacks.merge.merge_chunk_records` combines them into the final record;
  under ``torchrun`` each rank runs shard ``(RANK, WORLD_SIZE)`` and rank 0 merges
  (:mod:`advscale.attacks.distributed`);
* **idempotent results files**: a record is identified by
  :func:`advscale.attacks.settings.settings_key` (checkpoint hash, data hash, attack settings,
  package and version); a cron job only pays for new checkpoints.

Attacks: every name in the registry (:mod:`advscale.attacks.registry`; built in: advscale's PGD
``pgd-cw`` / ``pgd-cw-margin`` / ``pgd-ce`` and fra31's AutoAttack ``aa-standard`` / ``aa-rand``
/ ``apgd-ce``), under the settings' threat model (``norm``: ``linf`` or ``l2``). An image counts
as robust when it is classified correctly both clean and after the attack (RobustBench's
convention, so robust <= clean), decided by the evaluation service for every attack
(:func:`advscale.attacks.robustness.image_outcomes`). Progress (per chunk, and per stage of
AutoAttack, with elapsed time and ETA) goes to :mod:`advscale.attacks.progress`'s logger.

Units: ``eps`` and ``step_size`` in [0, 1] pixel units; accuracies are fractions; ``wall_s``
seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from advscale.attacks.advfile import read_adv_settings, write_adv_file
from advscale.attacks.chunks import ChunkResult, attack_chunk
from advscale.attacks.inputs import (
    Log,
    Target,
    TestData,
    check_model_fits,
    count_test_images,
    info_log,
    load_test_data,
    resolve_targets,
)
from advscale.attacks.precision import precision_context, precision_note, with_precision
from advscale.attacks.progress import Progress
from advscale.attacks.records import attack_record, chunk_record, combine_chunks, static_fields
from advscale.attacks.settings import AttackSettings, package_of, settings_config, settings_key
from advscale.attacks.statefile import StateFile, find_result
from advscale.core.devices import resolve_device
from advscale.core.fileio import refuse_overwrite_of_inputs
from advscale.core.locks import hold_locks
from advscale.errors import AdvscaleError
from advscale.models import count_parameters
from advscale.models.checkpoint import load_for_eval
from advscale.models.meansparse import set_straight_through
from advscale.records import append_record


@dataclass
class Evaluation:
    """Outcome of :func:`evaluate_checkpoint`."""

    target: Target
    key: str
    record: dict[str, Any] | None = None
    """The final ``attack`` record (unsharded runs, or a skipped one from the results file)."""
    chunk_records: list[dict[str, Any]] = field(default_factory=list)
    """This shard's chunk records (sharded runs)."""
    skipped: bool = False
    computed_chunks: int = 0


def load_model(target: Target, data: TestData, device: torch.device,
               gradient: str = "exact") -> tuple[Any, int]:
    """The checkpoint's model, eval mode, fp32, no parameter gradients; and its parameters N.

    ``gradient="bpda"`` switches its MeanSparse layers to straight-through gradients
    (:data:`advscale.attacks.settings.GRADIENTS`); a model without any is an error."""
    model, meta = load_for_eval(target.path, device=device)
    if gradient == "bpda" and set_straight_through(model, True) == 0:
        raise AdvscaleError(f"{target.path}: gradient bpda needs MeanSparse layers and "
                            f"{meta.get('model')} has none", field="gradient")
    if meta["checkpoint_sha256"] != target.sha256:
        raise AdvscaleError(f"{target.path}: checkpoint changed while being evaluated")
    params = target.meta.get("params")
    if not isinstance(params, int):
        params = count_parameters(model)
    model.eval().float().requires_grad_(False)  # attacks need input gradients only
    check_model_fits(model, data, device)
    return model, params


@dataclass
class _Job:
    """One checkpoint's evaluation in progress: what each chunk needs."""

    model: Any
    data: TestData
    s: AttackSettings
    device: torch.device
    key: str
    name: str
    static: dict[str, Any]
    state: StateFile | None
    done: dict[int, dict[str, Any]]
    keep_arrays: bool
    verbose: bool
    log: Log
    config: Mapping[str, Any] | None
    on_chunk: Callable[[ChunkResult], None] | None
    progress: Progress | None = None

    def run(self, c: int, ev: Evaluation) -> tuple[dict[str, Any], ChunkResult | None]:
        """Chunk ``c``'s record and (when images are kept) its result: from the state file,
        or attacked now. A finished chunk is re-attacked only for its images (deterministic)."""
        prior = self.done.get(c)
        if prior is not None:
            if not self.keep_arrays:
                return prior, None
            arrays = self.state.load_arrays(self.key, prior) if self.state is not None else None
            if arrays is not None:
                return prior, arrays
        s = self.s
        start, stop = s.chunk_bounds(c)
        res = attack_chunk(self.model, self.data.images[start:stop],
                           self.data.labels[start:stop], s, c, self.device,
                           verbose=self.verbose, progress=None if self.progress is None
                           else self.progress.stage_reporter(c))
        if prior is not None:  # keep the first record and its timing
            res.wall_s, rec = float(prior["wall_s"]), prior
        else:
            ev.computed_chunks += 1
            rec = chunk_record(self.static, s, res, self.config)
        if self.state is not None:
            if self.keep_arrays:
                self.state.save_arrays(self.key, res)
            if prior is None:
                self.state.append(rec)
        if self.progress is not None:
            self.progress.chunk_done(c, start, stop, res.clean_correct, res.robust_correct,
                                     res.wall_s)
        if self.on_chunk is not None:
            self.on_chunk(res)
        return rec, (res if self.keep_arrays else None)


def refuse_other_adv_file(save_adv: Any, key: str, force: bool) -> None:
    """An existing adversarial-image file of another evaluation is replaced only with force
    (the same evaluation's is rewritten: a re-run or a resume)."""
    if save_adv is None or force or not os.path.lexists(save_adv):
        return
    try:
        other = _adv_file_key(save_adv)
    except (AdvscaleError, OSError):
        other = None
    if other != key:
        raise AdvscaleError(f"{save_adv} already exists and holds other images than this "
                            "evaluation's; overwrite it with force", field="force")


def _adv_file_key(path: str | os.PathLike[str]) -> str | None:
    """The settings key an existing adversarial-image file was written for, if any."""
    return read_adv_settings(path).get("settings_key")


def _final(job: _Job, chunk_recs: Mapping[int, dict[str, Any]],
           results: str | os.PathLike[str] | None, force: bool) -> dict[str, Any]:
    """The final ``attack`` record, appended to ``results`` unless it is already there."""
    payload = combine_chunks(chunk_recs.values())
    record = attack_record(payload, job.config)
    if results is not None and (force or find_result(results, job.key) is None):
        append_record(results, record)
    s = job.s
    job.log(f"advscale attack: {job.name}: {s.attack} {s.norm} eps={s.eps:.5f} n={s.n}: clean "
            f"{payload['clean_acc']:.4f}, robust {payload['robust_acc']:.4f}, "
            f"{payload['wall_s']:.1f} s")
    return record


def evaluate_checkpoint(
    target: Target,
    data: TestData,
    settings: AttackSettings,
    *,
    device: str | Any = "cpu",
    state: str | os.PathLike[str] | None = None,
    results: str | os.PathLike[str] | None = None,
    force: bool = False,
    shard: tuple[int, int] = (0, 1),
    save_adv: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    log: Log = info_log,
    on_chunk: Callable[[ChunkResult], None] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate one checkpoint; see the module doc for chunks, resume, shards and results.

    ``settings`` must be resolved against ``data``. Unsharded runs return the final ``attack``
    record and append it to ``results``; a run whose settings key is already in ``results`` is
    skipped (returns that record) unless ``force``. Sharded runs return their chunk records.
    ``save_adv`` writes the adversarial-image HDF5 file (:mod:`advscale.attacks.advfile`) for
    the chunks this process covers. ``on_chunk`` is called after each newly attacked chunk.
    """
    s = settings
    i, k = shard
    package, package_version = package_of(s.attack)
    key = settings_key(target.sha256, data.sha256, s, package, package_version)
    name = target.meta.get("run_id") or str(target.path)
    ev = Evaluation(target, key)
    refuse_other_adv_file(save_adv, key, force)
    prior = None if force else find_result(results, key)
    if prior is not None and (save_adv is None or _adv_file_key(save_adv) == key):
        log(f"advscale attack: {name}: already evaluated in {results} ({s.attack}, key "
            f"{key}); skipping (use --force to re-run)")
        ev.record, ev.skipped = prior, True
        return ev

    dev = torch.device(device)
    model, params = load_model(target, data, dev, s.gradient)
    model = with_precision(model, s.precision, dev)
    static = static_fields(target, data, s, params, package, package_version,
                           precision_note(s.precision, dev))
    st = StateFile(state, log) if state is not None else None
    job = _Job(model, data, s, dev, key, name, static, st, st.done(key) if st else {},
               save_adv is not None, verbose, log, config, on_chunk)
    mine = [c for c in range(s.chunks) if c % k == i]
    resumed = [c for c in mine if c in job.done]
    if resumed:
        log(f"advscale attack: {name}: resuming, {len(resumed)} of {len(mine)} chunks already "
            f"done in {state}")
    job.progress = Progress(name, s.attack, len([c for c in mine if c not in job.done]),
                            s.chunks)
    chunk_recs: dict[int, dict[str, Any]] = {}
    parts: list[ChunkResult] = []
    with precision_context(s.precision, dev):
        for c in mine:
            chunk_recs[c], res = job.run(c, ev)
            if res is not None:
                parts.append(res)

    if save_adv is not None:
        write_adv_file(save_adv, parts, data, static, s)
        if st is not None:  # the file is whole: the per-chunk copies are no longer needed
            st.drop_arrays(key, mine)
        log(f"advscale attack: wrote {save_adv} ({sum(p.stop - p.start for p in parts)} images)")
    if k > 1:
        ev.chunk_records = [chunk_recs[c] for c in mine]
    else:
        ev.record = _final(job, chunk_recs, results, force)
    return ev


def check_outputs(data_path: str | os.PathLike[str], checkpoints: Sequence[Any], *,
                  state: Any = None, results: Any = None, save_adv: Any = None) -> None:
    """Refuse an output (``--save-adv``, ``--state``, ``--results``) that is an input file.

    Compared by inode, so a hard link or another spelling of ``--data`` is caught too; the
    adversarial-image file must not be the state or results file either.
    """
    inputs = [data_path, *(c for c in checkpoints if os.path.isfile(c))]
    refuse_overwrite_of_inputs([save_adv, state, results], inputs)
    refuse_overwrite_of_inputs([save_adv], [state, results], what="JSONL log")


def attack_checkpoints(
    specs: Sequence[str | os.PathLike[str]],
    data_path: str | os.PathLike[str],
    settings: AttackSettings,
    *,
    device: str = "auto",
    state: str | os.PathLike[str] | None = None,
    results: str | os.PathLike[str] | None = None,
    force: bool = False,
    shard: tuple[int, int] = (0, 1),
    save_adv: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    log: Log = info_log,
) -> Iterator[dict[str, Any]]:
    """Evaluate every checkpoint of ``specs``; yield records as each one finishes.

    Yields one final ``attack`` record per checkpoint (unsharded), or each checkpoint's chunk
    records (``shard`` with k > 1, for :func:`advscale.attacks.merge.merge_chunk_records`).
    Validates everything (settings, data, checkpoints, device) before the first attack starts.
    """
    check_outputs(data_path, specs, state=state, results=results, save_adv=save_adv)
    resolved = settings.resolved(count_test_images(data_path))
    data = load_test_data(data_path, int(resolved.n))  # type: ignore[arg-type]
    targets = resolve_targets(specs, log)
    if not targets:
        log("advscale attack: no checkpoints to evaluate")
        return
    check_outputs(data_path, [t.path for t in targets], state=state, results=results,
                  save_adv=save_adv)
    if save_adv is not None and len(targets) > 1:
        raise AdvscaleError("save_adv writes one file: give it one checkpoint at a time",
                            field="save_adv")
    dev = resolve_device(device)
    config = settings_config(resolved, device=str(dev), shard=f"{shard[0]}/{shard[1]}")
    with hold_locks([state, results, save_adv], "attack output"):  # one writer at a time
        for t in targets:
            ev = evaluate_checkpoint(t, data, resolved, device=dev, state=state,
                                     results=results, force=force, shard=shard,
                                     save_adv=save_adv, verbose=verbose, log=log, config=config)
            if ev.record is not None:
                yield ev.record
            else:
                yield from ev.chunk_records
