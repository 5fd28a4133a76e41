"""Generation jobs: batched, resumable, sharded synthetic datasets in the advscale HDF5 layout.

A job is ``num`` images numbered ``0 .. num-1``. Image ``i`` has a fixed label (the job's
labels are class-balanced — counts differ by at most one — and pre-shuffled by a keyed
permutation of the indices) and a fixed 63-bit seed (a hash of the job seed and ``i``) from
which its latent and churn noise are drawn. Images are computed in batches of ``batch_size``
consecutive indices, and shard ``i/k`` takes a contiguous run of whole batches, so every image
is computed in the same batch whatever the sharding or resumption: a resumed or sharded job
writes bit-identical pixels to an uninterrupted one.

Output: ``OUT`` is written as ``OUT.partial`` with the ``count`` attribute committed after each
batch; ``resume=True`` reopens the partial file, checks that every setting matches, and
continues at ``count``. On completion the partial file is renamed to ``OUT``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from advscale.core.tensors import to_uint8_nhwc
from advscale.data.layout import ImageFileWriter, read_attrs
from advscale.data.reader import stitch
from advscale.data.sampler import FeistelPermutation
from advscale.errors import AdvscaleError
from advscale.synthetic.edm import edm_sample

LABELING = "feistel-balanced-v1"
SEEDING = "splitmix64-v1"
Progress = Callable[[int, int], None]
"""``progress(rows_done, rows_total)`` for this shard."""


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def image_seeds(seed: int, rows: np.ndarray) -> np.ndarray:
    """Per-image 63-bit seeds (int64) of global image indices ``rows`` in a job seeded ``seed``."""
    base = _splitmix(np.asarray([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        h = _splitmix(np.asarray(rows, dtype=np.uint64) ^ base)
    return (h >> np.uint64(1)).astype(np.int64)


def job_labels(seed: int, num: int, num_classes: int, rows: np.ndarray) -> np.ndarray:
    """Labels (int64) of global indices ``rows``: ``perm(i) mod K`` for a keyed permutation.

    Over the whole job every class gets ``floor(num/K)`` or ``ceil(num/K)`` images, in a
    shuffled order, and any slice of indices can be labelled without the rest.
    """

    key = int(_splitmix(np.asarray([(seed ^ 0x1ABE1) & 0xFFFFFFFFFFFFFFFF], np.uint64))[0])
    perm = FeistelPermutation(num, key)
    return (perm(np.asarray(rows, dtype=np.int64)) % num_classes).astype(np.int64)


def shard_rows(num: int, batch_size: int, shard: tuple[int, int]) -> tuple[int, int]:
    """Global rows ``[start, end)`` of shard ``(i, k)``: a contiguous run of whole batches."""
    i, k = shard
    nb = math.ceil(num / batch_size)
    b0, b1 = (i * nb) // k, ((i + 1) * nb) // k
    return min(b0 * batch_size, num), min(b1 * batch_size, num)


def partial_path(out: str | os.PathLike[str]) -> Path:
    """Where an unfinished job writes (renamed to ``out`` when complete)."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _job_signature(
    generator: Any, config: Any, *, num: int, seed: int, batch_size: int,
    shard: tuple[int, int], rows: tuple[int, int],
) -> dict[str, Any]:
    return {
        **generator.attrs(),
        **{f"sampler_{k}": v for k, v in config.as_attrs().items()},
        "steps": config.steps,
        "nfe": config.nfe,
        "seed": int(seed),
        "num_total": int(num),
        "batch_size": int(batch_size),
        "shard_index": int(shard[0]),
        "shard_count": int(shard[1]),
        "row_start": int(rows[0]),
        "row_end": int(rows[1]),
        "labeling": LABELING,
        "seeding": SEEDING,
        "image_range": "[-1,1] -> round((x+1)*127.5) clipped to uint8",
    }


def generate(
    generator: Any,
    out: str | os.PathLike[str],
    *,
    num: int,
    steps: int,
    seed: int = 0,
    batch_size: int = 256,
    shard: tuple[int, int] = (0, 1),
    resume: bool = False,
    sampler_overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generate this shard's images of a ``num``-image job into ``out``; return a summary.

    ``sampler_overrides`` sets other :class:`~advscale.synthetic.edm.SamplerConfig` fields
    (``sigma_min``, ``s_churn``, ...). Raises AdvscaleError if ``out`` exists, or if an
    interrupted ``out.partial`` exists and ``resume`` is False or its settings differ.
    The summary is the payload of the ``synthetic`` record (docs/formats.md).
    """
    config = _check_job(generator, num, steps, batch_size, shard, sampler_overrides)
    rows = shard_rows(num, batch_size, shard)
    n_rows = rows[1] - rows[0]
    sig = _job_signature(generator, config, num=num, seed=seed, batch_size=batch_size,
                         shard=shard, rows=rows)
    out = Path(out)
    t0 = time.perf_counter()
    if out.exists():
        if resume and _same_job(read_attrs(out), sig):
            return _summary(out, sig, generator, n_rows, 0, n_rows, time.perf_counter() - t0)
        raise AdvscaleError(f"{out} already exists; remove it or choose another out", field="out")
    part = partial_path(out)
    writer = _open_writer(part, generator, sig, n_rows, rows, batch_size, resume)
    resumed_from = writer.written
    if log and resumed_from:
        log(f"{part}: resuming at row {resumed_from:,} of {n_rows:,}")
    try:
        nfe = _fill(writer, generator, config, rows, resumed_from, seed, num, batch_size,
                    progress)
        writer.f.attrs["status"] = "complete"
        writer.close()
    except BaseException:
        if writer.f.id.valid:
            writer.f.close()
        raise
    if nfe and nfe != config.nfe:  # the sampler's own count must agree with the formula
        raise AdvscaleError(f"internal error: {nfe} denoiser calls, expected {config.nfe}")
    os.replace(part, out)
    wall = time.perf_counter() - t0
    return _summary(out, sig, generator, n_rows, n_rows - resumed_from, resumed_from, wall)


def _check_job(generator: Any, num: int, steps: int, batch_size: int, shard: tuple[int, int],
               sampler_overrides: dict[str, Any] | None) -> Any:
    """Validate a job's sizes and shard; return the generator's sampler config."""
    if num < 1:
        raise AdvscaleError("num must be >= 1", field="num")
    if batch_size < 1:
        raise AdvscaleError("batch_size must be >= 1", field="batch_size")
    i, k = shard
    if not (k >= 1 and 0 <= i < k):
        raise AdvscaleError(f"shard {i}/{k} needs 0 <= i < k")
    try:
        return generator.sampler_config(steps, **(sampler_overrides or {}))
    except ValueError as e:
        raise AdvscaleError(f"sampler settings: {e}") from None


def _open_writer(part: Path, generator: Any, sig: dict[str, Any], n_rows: int,
                 rows: tuple[int, int], batch_size: int, resume: bool) -> ImageFileWriter:
    """A new ``out.partial``, or the interrupted one reopened when ``resume`` (same job)."""
    if not part.exists():
        part.parent.mkdir(parents=True, exist_ok=True)
        attrs = {**sig, "job": json.dumps(sig, sort_keys=True), "status": "partial"}
        return ImageFileWriter(
            part, n_rows, source="synthetic", class_names=generator.class_names,
            image_shape=(generator.image_shape[1], generator.image_shape[2],
                         generator.image_shape[0]),
            with_seeds=True, attrs=attrs, libver="earliest",  # reopenable after SIGKILL
        )
    if not resume:
        raise AdvscaleError(
            f"{part} is left from an interrupted run: resume to continue it, or "
            "delete it to start over", field="resume")
    diff = _differences(read_attrs(part), sig)
    if diff:
        raise AdvscaleError(f"{part} was made with other settings ({diff}); cannot resume")
    writer = ImageFileWriter.open_existing(part)
    done = writer.written
    if done % batch_size and rows[0] + done != rows[1]:
        writer.f.close()
        raise AdvscaleError(f"{part}: count {done} is not at a batch boundary")
    return writer


def _fill(writer: ImageFileWriter, generator: Any, config: Any, rows: tuple[int, int],
          start: int, seed: int, num: int, batch_size: int, progress: Progress | None) -> int:
    """Sample and commit the shard's batches from local row ``start``; the last NFE count."""
    n_rows = rows[1] - rows[0]
    nfe = 0
    if progress:
        progress(start, n_rows)
    with torch.inference_mode():
        for local in range(start, n_rows, batch_size):
            g0 = rows[0] + local
            g1 = min(g0 + batch_size, rows[1])
            idx = np.arange(g0, g1, dtype=np.int64)
            seeds = image_seeds(seed, idx)
            labels = job_labels(seed, num, generator.num_classes, idx)
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
            latents = generator.prior(gens)
            lab_t = torch.from_numpy(labels).to(generator.device)
            res = edm_sample(generator.denoise, latents, lab_t, config, gens)
            nfe = res.nfe
            writer.write(to_uint8_nhwc(res.images, value_range="symmetric"), labels, seeds,
                         start=local)
            writer.commit()
            if progress:
                progress(local + (g1 - g0), n_rows)
    return nfe


def _same_job(attrs: dict[str, Any], sig: dict[str, Any]) -> bool:
    return not _differences(attrs, sig)


def _differences(attrs: dict[str, Any], sig: dict[str, Any]) -> str:
    """Names of settings whose stored value differs from this job's (empty when identical)."""
    stored = attrs.get("job")
    if isinstance(stored, str):
        stored = json.loads(stored)
    if not isinstance(stored, dict):
        return "no job settings stored"
    want = json.loads(json.dumps(sig, sort_keys=True))
    keys = sorted(k for k in set(stored) | set(want) if stored.get(k) != want.get(k))
    return ", ".join(keys)


def _summary(
    out: Path, sig: dict[str, Any], generator: Any, n: int, generated: int, resumed_from: int,
    wall: float,
) -> dict[str, Any]:
    flops_per_image = float(generator.flops_per_call) * sig["nfe"]
    return {
        "path": str(out),
        "n": int(n),
        "rows_generated": int(generated),
        "resumed_from": int(resumed_from),
        **{k: sig[k] for k in sig if k not in ("image_range",)},
        "shard": f"{sig['shard_index']}/{sig['shard_count']}",
        "flops_per_image": flops_per_image,
        "gen_flops": flops_per_image * generated,
        "device": str(generator.device),
        "wall_s": wall,
        "images_per_s": generated / wall if wall > 0 and generated else None,
    }


def stitch_synthetic(
    shards: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    real: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any]:
    """Stitch the complete set of a job's shards (after any ``real`` files) into one virtual file.

    Checks that the shards come from one job (identical settings but the shard fields), that
    each is complete, and that together they cover rows ``0 .. num-1`` exactly once; they are
    concatenated in row order, so the result equals the job run as one shard.
    """

    if not shards:
        raise AdvscaleError("no shard files to stitch")
    infos = []
    for p in shards:
        a = read_attrs(p)
        job = a.get("job")
        if not isinstance(job, dict):
            raise AdvscaleError(f"{p}: not a gen-synthetic shard (no job attribute)")
        if a.get("status") != "complete":
            raise AdvscaleError(f"{p}: shard is not complete; finish it with resume",
                                field="resume")
        infos.append((Path(p), job))
    shard_keys = {"shard_index", "shard_count", "row_start", "row_end"}
    ref = {k: v for k, v in infos[0][1].items() if k not in shard_keys}
    for p, job in infos[1:]:
        other = {k: v for k, v in job.items() if k not in shard_keys}
        if other != ref:
            diff = sorted(k for k in set(ref) | set(other) if ref.get(k) != other.get(k))
            raise AdvscaleError(f"{p}: from a different job than {infos[0][0]} ({', '.join(diff)})")
    infos.sort(key=lambda t: t[1]["row_start"])
    pos = 0
    for p, job in infos:
        if job["row_start"] != pos:
            raise AdvscaleError(
                f"shards do not tile rows 0..{ref['num_total']}: {p} starts at "
                f"{job['row_start']}, expected {pos} (missing or duplicate shard?)"
            )
        pos = job["row_end"]
    if pos != ref["num_total"]:
        raise AdvscaleError(f"shards cover rows 0..{pos} of {ref['num_total']}: a shard is missing")

    summary = stitch([*map(str, real), *(str(p) for p, _ in infos)], out)
    n_real = summary["n"] - ref["num_total"]
    with h5py.File(out, "r+") as f:  # say which rows are synthetic and how they were made
        f.attrs["synthetic_job"] = json.dumps(ref, sort_keys=True)
        f.attrs["synthetic_rows"] = json.dumps([n_real, summary["n"]])
    summary["synthetic_job"] = ref
    summary["synthetic_rows"] = [n_real, summary["n"]]
    return summary
