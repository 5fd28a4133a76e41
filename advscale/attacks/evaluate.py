"""Chunked, resumable, shardable robustness evaluation of checkpoints (``advscale attack``).

The first ``n`` test images, in file order, are split into fixed chunks of ``chunk_size``
images. Chunk ``c`` is attacked on its own with seed ``seed + c`` (the global RNG is reseeded
before every attack), in batches of ``batch_size``; so a chunk's result depends only on its
images and these settings, never on which process ran it or on what ran before. That gives:

* **resume**: each finished chunk appends an ``attack.chunk`` record to a state file; a killed
  run skips the chunks already there and its final ``attack`` record equals an uninterrupted
  run's (``wall_s`` is the sum of the chunks' own seconds);
* **shards**: ``shard=(i, k)`` attacks chunks ``c`` with ``c % k == i`` and returns their chunk
  records; :func:`merge_chunk_records` combines the shards into the same final record;
* **idempotent results files**: a record is identified by :func:`settings_key` (checkpoint hash,
  data hash, attack settings, package and version); :func:`find_result` finds it again, so a
  cron job only pays for new checkpoints.

Attacks: ``pgd-cw`` / ``pgd-ce`` (advscale's own :func:`advscale.attacks.pgd.pgd_linf`: k-step
L∞ PGD from a uniform random start, no restarts, step 2/255 by default; the papers' PGD-40 is
``pgd-cw`` with 40 steps) and ``aa-standard`` / ``aa-rand`` / ``apgd-ce`` (fra31's AutoAttack
through :mod:`advscale.attacks.autoattack`). An image counts as robust when it is classified
correctly both clean and after the attack (RobustBench's convention, so robust <= clean).

Units: ``eps`` and ``step_size`` in [0, 1] pixel units; accuracies are fractions; ``wall_s``
seconds.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from advscale.core.devices import resolve_device
from advscale.core.tensors import to_nchw
from advscale.errors import AdvscaleError

PGD_ATTACKS = {"pgd-cw": "cw", "pgd-ce": "ce"}
"""advscale PGD attack name → loss of :func:`advscale.attacks.pgd.pgd_linf`."""
AA_NAMES = ("aa-standard", "aa-rand", "apgd-ce")
"""Attacks run by AutoAttack (see :mod:`advscale.attacks.autoattack`)."""
ATTACKS = (*AA_NAMES, *PGD_ATTACKS)
"""Every attack name ``advscale attack --attack`` accepts."""

DEFAULT_N = 10_000
DEFAULT_PGD_STEPS = 40
DEFAULT_PGD_STEP_SIZE = 2 / 255
DEFAULT_APGD_ITERS = 100

Log = Callable[[str], None]


def _stderr_log(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class AttackSettings:
    """What to run. ``None`` fields take their defaults in :meth:`resolved`.

    ``steps``: PGD steps (default 40) for ``pgd-*``, APGD iterations (default 100) for
    ``apgd-ce``; AutoAttack's versions have fixed settings (``None``). ``step_size``: PGD step in
    [0, 1] pixel units (default 2/255; ``None`` for AutoAttack). ``n``: the first ``n`` test
    images (default: 10,000 or the whole file when smaller). ``batch_size`` and ``chunk_size`` in
    images; results are reproducible for fixed ``seed``, ``batch_size`` and ``chunk_size``.
    """

    attack: str = "aa-standard"
    eps: float = 8 / 255
    steps: int | None = None
    step_size: float | None = None
    n: int | None = None
    batch_size: int = 250
    chunk_size: int = 1000
    seed: int = 0

    def resolved(self, available: int | None = None) -> AttackSettings:
        """Validated settings with defaults filled in; AdvscaleError on bad values.

        ``available`` is the number of test images in the data file.
        """
        if self.attack not in ATTACKS:
            raise AdvscaleError(f"unknown attack {self.attack!r}; choose from {', '.join(ATTACKS)}")
        if not (isinstance(self.eps, int | float) and math.isfinite(self.eps)
                and 0 < self.eps <= 1):
            raise AdvscaleError(f"--eps must lie in (0, 1] (pixel units, e.g. 8/255), "
                                f"got {self.eps}")
        steps, step_size = self.steps, self.step_size
        if self.attack in PGD_ATTACKS:
            steps = DEFAULT_PGD_STEPS if steps is None else steps
            step_size = DEFAULT_PGD_STEP_SIZE if step_size is None else step_size
            if steps < 1:
                raise AdvscaleError(f"--steps must be >= 1, got {steps}")
            if not (math.isfinite(step_size) and step_size > 0):
                raise AdvscaleError(f"--step-size must be > 0, got {step_size}")
        elif self.attack == "apgd-ce":
            steps = DEFAULT_APGD_ITERS if steps is None else steps
            if steps < 1:
                raise AdvscaleError(f"--steps must be >= 1, got {steps}")
            if step_size is not None:
                raise AdvscaleError("--step-size applies to pgd-cw/pgd-ce only (APGD adapts it)")
        else:
            if steps is not None or step_size is not None:
                raise AdvscaleError(f"{self.attack} has AutoAttack's fixed settings: --steps and "
                                    "--step-size apply to pgd-cw, pgd-ce and apgd-ce")
        n = self.n
        if n is None:
            n = DEFAULT_N if available is None else min(DEFAULT_N, available)
        if n < 1:
            raise AdvscaleError(f"--n must be >= 1, got {n}")
        if available is not None and n > available:
            raise AdvscaleError(f"--n {n} exceeds the {available} images in the test file")
        if self.batch_size < 1:
            raise AdvscaleError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.chunk_size < 1:
            raise AdvscaleError(f"--chunk-size must be >= 1, got {self.chunk_size}")
        if self.seed < 0:
            raise AdvscaleError(f"--seed must be >= 0, got {self.seed}")
        return replace(self, steps=None if steps is None else int(steps),
                       step_size=None if step_size is None else float(step_size), n=int(n),
                       eps=float(self.eps), batch_size=int(self.batch_size),
                       chunk_size=int(self.chunk_size), seed=int(self.seed))

    @property
    def chunks(self) -> int:
        """Number of chunks (settings must be resolved)."""
        assert self.n is not None
        return -(-self.n // self.chunk_size)

    def chunk_bounds(self, chunk: int) -> tuple[int, int]:
        """Test rows ``[start, stop)`` of ``chunk``."""
        assert self.n is not None
        start = chunk * self.chunk_size
        return start, min(self.n, start + self.chunk_size)

    def chunk_seed(self, chunk: int) -> int:
        """The seed of ``chunk``: ``seed + chunk`` (chunk 0 uses ``seed`` itself)."""
        return self.seed + chunk


def package_of(attack: str) -> tuple[str, str]:
    """(package, version) that implements ``attack``: AutoAttack's distribution or advscale."""
    if attack in PGD_ATTACKS:
        from advscale import __version__

        return "advscale", __version__
    from advscale.attacks.autoattack import find_backend

    b = find_backend()
    return b.package, b.version


def settings_key(checkpoint_sha256: str, data_sha256: str, s: AttackSettings,
                 package: str, package_version: str) -> str:
    """A 16-hex-digit id of one evaluation: same key ⇔ same checkpoint, data, settings, code."""
    doc = {"checkpoint_sha256": checkpoint_sha256, "data_sha256": data_sha256,
           "attack": s.attack, "eps": round(s.eps, 12), "steps": s.steps,
           "step_size": None if s.step_size is None else round(s.step_size, 12), "n": s.n,
           "batch_size": s.batch_size, "chunk_size": s.chunk_size, "seed": s.seed,
           "package": package, "package_version": package_version}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# inputs: test data and checkpoints


@dataclass
class TestData:
    """The first ``n`` images of a test file, in file order."""

    path: str
    images: np.ndarray
    """uint8 (n, H, W, 3)."""
    labels: np.ndarray
    """int64 (n,)."""
    class_names: list[str]
    available: int
    """Valid rows in the file."""
    sha256: str = ""
    """sha256 of the selected labels (int64) and images (uint8), little-endian bytes."""


def count_test_images(path: str | os.PathLike[str]) -> int:
    """Valid rows of an advscale HDF5 image file."""
    from advscale.data.layout import open_image_file, valid_count

    with open_image_file(path) as f:
        return valid_count(f)


def load_test_data(path: str | os.PathLike[str], n: int) -> TestData:
    """Read the first ``n`` images and labels of an advscale HDF5 file (docs/formats.md §1)."""
    from advscale.data.layout import (
        IMAGE_KEY,
        LABEL_KEY,
        class_names_of,
        open_image_file,
        valid_count,
    )

    with open_image_file(path) as f:
        available = valid_count(f)
        if n > available:
            raise AdvscaleError(f"{path}: --n {n} exceeds its {available} valid images")
        images = np.ascontiguousarray(f[IMAGE_KEY][:n])
        labels = np.asarray(f[LABEL_KEY][:n]).astype(np.int64)
        names = class_names_of(f)
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise AdvscaleError(f"{path}: labels must lie in [0, {len(names)}), found "
                            f"{labels.min()}..{labels.max()}")
    h = hashlib.sha256()
    h.update(labels.astype("<i8").tobytes())
    h.update(images.tobytes())
    return TestData(str(path), images, labels, list(names), available, h.hexdigest())


@dataclass
class Target:
    """One checkpoint to evaluate."""

    path: Path
    sha256: str
    meta: dict[str, Any]


_GLOB_CHARS = set("*?[")


def resolve_targets(specs: Sequence[str | os.PathLike[str]], log: Log = _stderr_log
                    ) -> list[Target]:
    """Checkpoint files from paths, run directories and (quoted) glob patterns.

    A run directory means its ``last.safetensors``. A glob's matches that are not (yet)
    checkpoints, e.g. a run directory that has not saved one, are skipped with a note; an
    explicit path that is not an advscale checkpoint is an error. Duplicates are dropped.
    """
    from advscale.core.fileio import file_sha256
    from advscale.models.checkpoint import read_checkpoint_metadata, resolve_checkpoint

    out: list[Target] = []
    seen: set[Path] = set()
    for spec in specs:
        spec = os.fspath(spec)
        is_glob = bool(_GLOB_CHARS & set(spec)) and not Path(spec).exists()
        paths = sorted(glob.glob(spec)) if is_glob else [spec]
        if is_glob and not paths:
            log(f"advscale attack: {spec}: no checkpoint matches (yet)")
        for p in paths:
            try:
                ckpt = resolve_checkpoint(p)
                meta = read_checkpoint_metadata(ckpt)
            except AdvscaleError as e:
                if is_glob:
                    log(f"advscale attack: skipping {p}: {e}")
                    continue
                raise
            real = ckpt.resolve()
            if real in seen:
                continue
            seen.add(real)
            out.append(Target(ckpt, file_sha256(ckpt), meta))
    return out


def check_model_fits(model: Any, data: TestData, device: Any) -> None:
    """One forward pass on a test image; AdvscaleError when model and data do not fit."""
    import torch

    x = torch.from_numpy(data.images[:1]).to(device).permute(0, 3, 1, 2).float() / 255
    try:
        with torch.no_grad():
            logits = model(x)
    except RuntimeError as e:
        msg = " ".join(str(e).split())[:200]
        raise AdvscaleError(f"model does not accept images of shape "
                            f"{tuple(data.images.shape[1:])} from {data.path} ({msg})") from None
    if logits.ndim != 2 or logits.shape[1] != len(data.class_names):
        raise AdvscaleError(f"model outputs {tuple(logits.shape[1:])} logits but {data.path} "
                            f"has {len(data.class_names)} classes")


# --------------------------------------------------------------------------------------------
# attacking one chunk


def pgd_eval_batch(model: Any, x: Any, y: Any, *, loss: str = "cw", eps: float = 8 / 255,
                   step_size: float = 2 / 255, steps: int = 40, generator: Any = None
                   ) -> tuple[Any, Any, Any]:
    """PGD evaluation of one batch: ``(logits_clean, logits_adv, x_adv)``.

    The papers' PGD-40 is ``loss="cw", steps=40, step_size=2/255`` at ``eps=8/255``, from a
    uniform random start, no restarts, on a model in eval mode. ``x`` is float (B, C, H, W) in
    [0, 1]; the random start draws from ``generator`` (or the global RNG). Shared by
    ``advscale attack`` and any evaluation that wants logits (e.g. the TRADES adversarial loss).
    """
    import torch

    from advscale.attacks.pgd import pgd_linf

    with torch.no_grad():
        logits_clean = model(x)
    x_adv = pgd_linf(model, x, y, eps=eps, step_size=step_size, steps=steps, loss=loss,
                     random_start=True, generator=generator)
    with torch.no_grad():
        logits_adv = model(x_adv)
    return logits_clean, logits_adv, x_adv


@dataclass
class ChunkResult:
    """Per-image outcome of one chunk (arrays over the chunk's images)."""

    chunk: int
    start: int
    stop: int
    pred_clean: np.ndarray
    pred_adv: np.ndarray
    robust: np.ndarray
    broken_by: list[str]
    x_adv: np.ndarray
    """float32 (k, H, W, 3) in [0, 1]: the adversarial image, or the clean one when the attack
    found none (AutoAttack) / the clean image was already misclassified."""
    per_attack_robust: dict[str, int]
    wall_s: float

    @property
    def clean_correct(self) -> int:
        return int(self.per_attack_robust["clean"])

    @property
    def robust_correct(self) -> int:
        return int(self.robust.sum())


def attack_chunk(model: Any, images: np.ndarray, labels: np.ndarray, s: AttackSettings,
                 chunk: int, device: Any, *, verbose: bool = False) -> ChunkResult:
    """Attack one chunk of uint8 (k, H, W, 3) images with resolved settings ``s``."""
    import torch

    start, stop = s.chunk_bounds(chunk)
    seed = s.chunk_seed(chunk)
    t0 = time.perf_counter()
    x = to_nchw(np.ascontiguousarray(images), device=device)
    y = torch.from_numpy(labels).to(device).long()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if s.attack in PGD_ATTACKS:
        gen = torch.Generator(device=x.device)
        gen.manual_seed(seed)
        pc, pa, xs = [], [], []
        for i in range(0, len(x), s.batch_size):
            xb, yb = x[i:i + s.batch_size], y[i:i + s.batch_size]
            lc, la, xa = pgd_eval_batch(model, xb, yb, loss=PGD_ATTACKS[s.attack], eps=s.eps,
                                        step_size=float(s.step_size), steps=int(s.steps),
                                        generator=gen)
            pc.append(lc.argmax(1))
            pa.append(la.argmax(1))
            xs.append(xa)
        pred_clean = torch.cat(pc).cpu().numpy().astype(np.int64)
        pred_adv = torch.cat(pa).cpu().numpy().astype(np.int64)
        x_adv = torch.cat(xs)
        clean_ok = pred_clean == labels
        adv_ok = pred_adv == labels
        robust = clean_ok & adv_ok
        # a clean-misclassified image needs no attack: keep it and its prediction as they were
        keep = torch.from_numpy(~clean_ok).to(x_adv.device)
        x_adv = torch.where(keep[:, None, None, None], x, x_adv)
        pred_adv = np.where(clean_ok, pred_adv, pred_clean)
        broken_by = ["clean" if not c else ("" if r else s.attack)
                     for c, r in zip(clean_ok, robust, strict=True)]
        per_attack = {"clean": int(clean_ok.sum()), s.attack: int(robust.sum())}
    else:
        from advscale.attacks.autoattack import AutoAttackRunner

        runner = AutoAttackRunner(model, s.attack, eps=s.eps, seed=seed, device=device,
                                  n_iter=s.steps if s.attack == "apgd-ce" else None,
                                  verbose=verbose)
        res = runner.run(x, y, batch_size=s.batch_size)
        pred_clean, pred_adv, robust = res.pred_clean, res.pred_adv, res.robust
        broken_by, per_attack, x_adv = res.broken_by, res.per_attack_robust, res.x_adv
    x_np = x_adv.permute(0, 2, 3, 1).contiguous().cpu().numpy().astype(np.float32)
    return ChunkResult(chunk, start, stop, pred_clean, pred_adv, np.asarray(robust, bool),
                       list(broken_by), x_np, dict(per_attack),
                       round(time.perf_counter() - t0, 3))


# --------------------------------------------------------------------------------------------
# records


RECORD_FIELDS = ("run_id", "model", "params", "checkpoint", "checkpoint_sha256", "samples_seen",
                 "attack", "eps", "steps", "step_size", "n", "batch_size", "chunk_size", "seed",
                 "data", "data_sha256", "package", "package_version", "settings_key")
"""Fields an ``attack`` record takes from the evaluation's settings (not from results)."""


def static_fields(target: Target, data: TestData, s: AttackSettings, params: int,
                  package: str, package_version: str) -> dict[str, Any]:
    """The settings part of an ``attack`` record (docs/formats.md, ``attack``)."""
    meta = target.meta
    samples = meta.get("samples_seen")
    return {
        "run_id": meta.get("run_id"),
        "model": meta.get("model"),
        "params": int(params),
        "checkpoint": str(target.path),
        "checkpoint_sha256": target.sha256,
        "samples_seen": int(samples) if isinstance(samples, int | float) else None,
        "attack": s.attack,
        "eps": s.eps,
        "steps": s.steps,
        "step_size": s.step_size,
        "n": s.n,
        "batch_size": s.batch_size,
        "chunk_size": s.chunk_size,
        "seed": s.seed,
        "data": data.path,
        "data_sha256": data.sha256,
        "package": package,
        "package_version": package_version,
        "settings_key": settings_key(target.sha256, data.sha256, s, package, package_version),
    }


def chunk_payload(static: Mapping[str, Any], s: AttackSettings, res: ChunkResult
                  ) -> dict[str, Any]:
    """Payload of an ``attack.chunk`` record: the settings plus one chunk's counts."""
    return {
        **static,
        "chunk": res.chunk,
        "chunks": s.chunks,
        "start": res.start,
        "stop": res.stop,
        "chunk_n": res.stop - res.start,
        "chunk_seed": s.chunk_seed(res.chunk),
        "clean_correct": res.clean_correct,
        "robust_correct": res.robust_correct,
        "per_attack_robust": res.per_attack_robust,
        "wall_s": res.wall_s,
    }


def combine_chunks(chunks: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The payload of a final ``attack`` record from all chunk records of one evaluation.

    Raises AdvscaleError when the chunks come from different evaluations, or some are missing.
    """
    by_index: dict[int, Mapping[str, Any]] = {}
    for c in chunks:
        by_index.setdefault(int(c["chunk"]), c)
    if not by_index:
        raise AdvscaleError("no chunk records to combine")
    first = by_index[min(by_index)]
    key = first["settings_key"]
    if any(c["settings_key"] != key for c in by_index.values()):
        raise AdvscaleError("chunk records from different evaluations cannot be combined")
    total = int(first["chunks"])
    missing = sorted(set(range(total)) - set(by_index))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise AdvscaleError(f"evaluation {key} ({first.get('checkpoint')}) is missing "
                            f"{len(missing)} of {total} chunks: {shown}")
    ordered = [by_index[i] for i in range(total)]
    n = sum(int(c["chunk_n"]) for c in ordered)
    if n != int(first["n"]):
        raise AdvscaleError(f"evaluation {key}: chunks cover {n} images, expected {first['n']}")
    clean = sum(int(c["clean_correct"]) for c in ordered)
    robust = sum(int(c["robust_correct"]) for c in ordered)
    per_attack: dict[str, int] | None = {}
    for c in ordered:
        pa = c.get("per_attack_robust")
        if pa is None or per_attack is None:
            per_attack = None
            continue
        for k, v in pa.items():
            per_attack[k] = per_attack.get(k, 0) + int(v)
    out = {k: first.get(k) for k in RECORD_FIELDS}
    out.update({
        "clean_acc": clean / n,
        "robust_acc": robust / n,
        "clean_correct": clean,
        "robust_correct": robust,
        "per_attack_robust": per_attack,
        "chunks": total,
        "wall_s": round(sum(float(c["wall_s"]) for c in ordered), 3),
    })
    return out


def attack_record(payload: Mapping[str, Any], config: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
    """A final ``attack`` record (with provenance) from :func:`combine_chunks`' payload."""
    from advscale.records import make_record

    return make_record("attack", payload, config=config, seed=payload.get("seed"))


# --------------------------------------------------------------------------------------------
# state and results files


class StateFile:
    """Append-only ``attack.chunk`` records of finished chunks (the resume state).

    A line cut short by a kill is ignored (and the next append starts on a fresh line). With
    adversarial images requested, each chunk's arrays are kept beside it in ``STATE.adv/``.
    """

    def __init__(self, path: str | os.PathLike[str], log: Log = _stderr_log) -> None:
        self.path = Path(path)
        self.log = log

    def _lines(self) -> list[dict[str, Any]]:
        from advscale.records import RecordError, parse_line

        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        out = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                out.append(parse_line(line, f"{self.path}:{i}"))
            except AdvscaleError:
                if i == len(lines):
                    self.log(f"advscale attack: {self.path}:{i}: ignoring a cut-off last line")
                    continue
                raise RecordError(f"{self.path}:{i}: corrupt state line; remove it or use a "
                                  "fresh --state file") from None
        return out

    def done(self, key: str) -> dict[int, dict[str, Any]]:
        """Finished chunk records of the evaluation ``key``, by chunk index."""
        out: dict[int, dict[str, Any]] = {}
        for r in self._lines():
            if r.get("kind") == "attack.chunk" and r.get("settings_key") == key:
                out.setdefault(int(r["chunk"]), r)
        return out

    def append(self, record: Mapping[str, Any]) -> None:
        from advscale.records import append_record

        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
        append_record(self.path, record)

    def arrays_path(self, key: str, chunk: int) -> Path:
        return Path(f"{self.path}.adv") / f"{key}-{chunk:06d}.npz"

    def save_arrays(self, key: str, res: ChunkResult) -> None:
        from advscale.core.fileio import atomic_write

        p = self.arrays_path(key, res.chunk)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(p, "wb") as f:
            np.savez(f, pred_clean=res.pred_clean, pred_adv=res.pred_adv, robust=res.robust,
                     x_adv=res.x_adv, broken_by=np.array(res.broken_by, dtype="U16"))

    def drop_arrays(self, key: str, chunks: Iterable[int]) -> None:
        for c in chunks:
            self.arrays_path(key, c).unlink(missing_ok=True)
        d = Path(f"{self.path}.adv")
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()

    def load_arrays(self, key: str, record: Mapping[str, Any]) -> ChunkResult | None:
        p = self.arrays_path(key, int(record["chunk"]))
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                return ChunkResult(int(record["chunk"]), int(record["start"]),
                                   int(record["stop"]), z["pred_clean"], z["pred_adv"],
                                   z["robust"], [str(b) for b in z["broken_by"]], z["x_adv"],
                                   dict(record["per_attack_robust"]), float(record["wall_s"]))
        except (OSError, ValueError, KeyError):
            return None


def find_result(results: str | os.PathLike[str] | None, key: str) -> dict[str, Any] | None:
    """The ``attack`` record of evaluation ``key`` in a results file, if there is one."""
    from advscale.records import read_records

    if results is None or not Path(results).is_file():
        return None
    found = None
    for r in read_records(results, kinds=["attack"]):
        if r.get("settings_key") == key:
            found = r
    return found


# --------------------------------------------------------------------------------------------
# the driver


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
    log: Log = _stderr_log,
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
    import torch

    from advscale.models.checkpoint import load_for_eval
    from advscale.records import append_record, make_record

    s = settings
    i, k = shard
    package, package_version = package_of(s.attack)
    key = settings_key(target.sha256, data.sha256, s, package, package_version)
    name = target.meta.get("run_id") or str(target.path)
    ev = Evaluation(target, key)
    if not force:
        prior = find_result(results, key)
        if prior is not None and (save_adv is None or _adv_file_key(save_adv) == key):
            log(f"advscale attack: {name}: already evaluated in {results} ({s.attack}, key "
                f"{key}); skipping (use --force to re-run)")
            ev.record, ev.skipped = prior, True
            return ev

    dev = torch.device(device)
    model, meta = load_for_eval(target.path, device=dev)
    if meta["checkpoint_sha256"] != target.sha256:
        raise AdvscaleError(f"{target.path}: checkpoint changed while being evaluated")
    from advscale.models import count_parameters

    params = target.meta.get("params")
    if not isinstance(params, int):
        params = count_parameters(model)
    model.eval().float().requires_grad_(False)  # attacks need input gradients only
    check_model_fits(model, data, dev)
    static = static_fields(target, data, s, params, package, package_version)
    st = StateFile(state, log) if state is not None else None
    done = st.done(key) if st is not None else {}
    mine = [c for c in range(s.chunks) if c % k == i]
    results_by_chunk: dict[int, ChunkResult] = {}
    chunk_recs: dict[int, dict[str, Any]] = {}
    resumed = [c for c in mine if c in done]
    if resumed:
        log(f"advscale attack: {name}: resuming, {len(resumed)} of {len(mine)} chunks already "
            f"done in {state}")
    for c in mine:
        if c in done:
            chunk_recs[c] = done[c]
            if save_adv is not None:
                arrays = st.load_arrays(key, done[c]) if st is not None else None
                if arrays is not None:
                    results_by_chunk[c] = arrays
                    continue
            else:
                continue
        start, stop = s.chunk_bounds(c)
        res = attack_chunk(model, data.images[start:stop], data.labels[start:stop], s, c, dev,
                           verbose=verbose)
        if c in done:  # recomputed only for its images (deterministic); keep the first record
            res.wall_s = float(done[c]["wall_s"])
        else:
            ev.computed_chunks += 1
            rec = make_record("attack.chunk", chunk_payload(static, s, res), config=config,
                              seed=s.chunk_seed(c))
            chunk_recs[c] = rec
        if st is not None:
            if save_adv is not None:
                st.save_arrays(key, res)
            if c not in done:
                st.append(chunk_recs[c])
        if save_adv is not None:
            results_by_chunk[c] = res
        log(f"advscale attack: {name}: {s.attack} chunk {c + 1}/{s.chunks} (images "
            f"{start}..{stop - 1}): clean {res.clean_correct}/{stop - start}, robust "
            f"{res.robust_correct}/{stop - start}, {res.wall_s:.1f} s")
        if on_chunk is not None:
            on_chunk(res)

    if save_adv is not None:
        from advscale.attacks.advfile import write_adv_file

        parts = [results_by_chunk[c] for c in mine]
        write_adv_file(save_adv, parts, data, static, s)
        if st is not None:  # the file is whole: the per-chunk copies are no longer needed
            st.drop_arrays(key, mine)
        log(f"advscale attack: wrote {save_adv} ({sum(p.stop - p.start for p in parts)} images)")

    if k > 1:
        ev.chunk_records = [chunk_recs[c] for c in mine]
        return ev
    payload = combine_chunks(chunk_recs.values())
    ev.record = attack_record(payload, config)
    if results is not None and (force or find_result(results, key) is None):
        append_record(results, ev.record)
    log(f"advscale attack: {name}: {s.attack} eps={s.eps:.5f} n={s.n}: clean "
        f"{payload['clean_acc']:.4f}, robust {payload['robust_acc']:.4f}, "
        f"{payload['wall_s']:.1f} s")
    return ev


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
    log: Log = _stderr_log,
) -> Iterator[dict[str, Any]]:
    """Evaluate every checkpoint of ``specs``; yield records as each one finishes.

    Yields one final ``attack`` record per checkpoint (unsharded), or each checkpoint's chunk
    records (``shard`` with k > 1, for :func:`merge_chunk_records`). Validates everything
    (settings, data, checkpoints, device) before the first attack starts.
    """
    resolved = settings.resolved(count_test_images(data_path))
    data = load_test_data(data_path, int(resolved.n))  # type: ignore[arg-type]
    targets = resolve_targets(specs, log)
    if not targets:
        log("advscale attack: no checkpoints to evaluate")
        return
    if save_adv is not None and len(targets) > 1:
        raise AdvscaleError("--save-adv writes one file: give it one checkpoint at a time")
    dev = resolve_device(device)
    config = settings_config(resolved, device=str(dev), shard=f"{shard[0]}/{shard[1]}")
    for t in targets:
        ev = evaluate_checkpoint(t, data, resolved, device=dev, state=state, results=results,
                                 force=force, shard=shard, save_adv=save_adv, verbose=verbose,
                                 log=log, config=config)
        if ev.record is not None:
            yield ev.record
        else:
            yield from ev.chunk_records


def _adv_file_key(path: str | os.PathLike[str]) -> str | None:
    """The settings key an existing adversarial-image file was written for, if any."""
    from advscale.attacks.advfile import read_adv_settings

    return read_adv_settings(path).get("settings_key")


def merge_chunk_records(
    sources: Sequence[str | os.PathLike[str]],
    *,
    results: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    log: Log = _stderr_log,
) -> list[dict[str, Any]]:
    """Final ``attack`` records from the ``attack.chunk`` records of shard runs or state files.

    Groups chunk records by settings key (one evaluation each); every group must cover all its
    chunks. Records are appended to ``results`` unless already there. ``-`` reads stdin.
    """
    from advscale.records import append_record, read_records

    groups: dict[str, list[dict[str, Any]]] = {}
    finals: dict[str, dict[str, Any]] = {}
    for r in read_records(list(sources), kinds=["attack.chunk", "attack"]):
        if "settings_key" not in r:
            raise AdvscaleError(f"an {r['kind']} record has no settings_key")
        if r["kind"] == "attack":  # already final (e.g. a shard skipped via --results)
            finals.setdefault(r["settings_key"], r)
        else:
            groups.setdefault(r["settings_key"], []).append(r)
    if not groups and not finals:
        raise AdvscaleError("no attack.chunk records found to merge")
    out = [r for key, r in finals.items() if key not in groups]
    for key, recs in groups.items():
        payload = combine_chunks(recs)
        rec = attack_record(payload, config)
        if results is not None and find_result(results, key) is None:
            append_record(results, rec)
        log(f"advscale attack: merged {payload['chunks']} chunks of {payload['checkpoint']}: "
            f"clean {payload['clean_acc']:.4f}, robust {payload['robust_acc']:.4f}")
        out.append(rec)
    return out


def settings_config(s: AttackSettings, **extra: Any) -> dict[str, Any]:
    """The settings as a provenance ``config`` dict."""
    return {**asdict(s), **extra}
