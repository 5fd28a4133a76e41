"""The ``attack`` and ``attack.chunk`` records (docs/formats.md, "Robustness evaluation").

Payloads are built here and wrapped with :func:`advscale.records.make_record`; callers (the
driver, the merger) return the records and the CLI only writes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from advscale.attacks.chunks import ChunkResult
from advscale.attacks.inputs import Target, TestData
from advscale.attacks.settings import AttackSettings, settings_key
from advscale.errors import AdvscaleError
from advscale.records import make_record

RECORD_FIELDS = ("run_id", "model", "params", "checkpoint", "checkpoint_sha256", "samples_seen",
                 "attack", "norm", "eps", "steps", "step_size", "n", "batch_size", "chunk_size",
                 "seed", "data", "data_sha256", "package", "package_version", "settings_key",
                 "gradient")
"""Fields an ``attack`` record takes from the evaluation's settings (not from results)."""


OPTIONAL_FIELDS = ("precision", "precision_note")
"""Settings fields present only when not at their default (``precision`` other than fp32)."""


def static_fields(target: Target, data: TestData, s: AttackSettings, params: int,
                  package: str, package_version: str, precision_note: str | None = None
                  ) -> dict[str, Any]:
    """The settings part of an ``attack`` record (docs/formats.md, ``attack``).

    ``precision`` (and ``precision_note``, e.g. tf32 on CPU) appear only when not fp32, so
    fp32 records are those of advscale before precisions existed."""
    meta = target.meta
    samples = meta.get("samples_seen")
    sparse = bool((meta.get("model_kwargs") or {}).get("meansparse"))
    gradient = {"gradient": s.gradient} if s.gradient != "exact" or sparse else {}
    extra: dict[str, Any] = {}
    if s.precision != "fp32":
        extra["precision"] = s.precision
        if precision_note:
            extra["precision_note"] = precision_note
    return {
        "run_id": meta.get("run_id"),
        "model": meta.get("model"),
        "params": int(params),
        "checkpoint": str(target.path),
        "checkpoint_sha256": target.sha256,
        "samples_seen": int(samples) if isinstance(samples, int | float) else None,
        "attack": s.attack,
        "norm": s.norm,
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
        **gradient,
        **extra,
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
        "adv_loss_sum": res.adv_loss_sum,
        "wall_s": res.wall_s,
    }


def chunk_record(static: Mapping[str, Any], s: AttackSettings, res: ChunkResult,
                 config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An ``attack.chunk`` record (with provenance) of one attacked chunk."""
    return make_record("attack.chunk", chunk_payload(static, s, res), config=config,
                       seed=s.chunk_seed(res.chunk))


def _ordered_chunks(chunks: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """All chunks of one evaluation in order; AdvscaleError when mixed or incomplete."""
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
    return ordered


def _sum_per_attack(ordered: list[Mapping[str, Any]]) -> dict[str, int] | None:
    per_attack: dict[str, int] = {}
    for c in ordered:
        pa = c.get("per_attack_robust")
        if pa is None:
            return None
        for k, v in pa.items():
            per_attack[k] = per_attack.get(k, 0) + int(v)
    return per_attack


def combine_chunks(chunks: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The payload of a final ``attack`` record from all chunk records of one evaluation.

    Raises AdvscaleError when the chunks come from different evaluations, or some are missing.
    ``adv_loss`` (PGD) is the mean TRADES loss with β = 5, null when a chunk lacks it.
    """
    ordered = _ordered_chunks(chunks)
    first = ordered[0]
    n = int(first["n"])
    clean = sum(int(c["clean_correct"]) for c in ordered)
    robust = sum(int(c["robust_correct"]) for c in ordered)
    losses = [c.get("adv_loss_sum") for c in ordered]
    out = {k: first.get(k) for k in RECORD_FIELDS if k in first or k != "gradient"}
    out["norm"] = first.get("norm") or "linf"  # chunks of an advscale without threat models
    out.update({k: first[k] for k in OPTIONAL_FIELDS if k in first})
    out.update({
        "clean_acc": clean / n,
        "robust_acc": robust / n,
        "clean_correct": clean,
        "robust_correct": robust,
        "adv_loss": None if None in losses else sum(float(v) for v in losses) / n,
        "per_attack_robust": _sum_per_attack(ordered),
        "chunks": len(ordered),
        "wall_s": round(sum(float(c["wall_s"]) for c in ordered), 3),
    })
    return out


def attack_record(payload: Mapping[str, Any], config: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
    """A final ``attack`` record (with provenance) from :func:`combine_chunks`' payload."""
    return make_record("attack", payload, config=config, seed=payload.get("seed"))
