"""``advscale.attack``: AutoAttack / PGD evaluation of checkpoints (torch-free at import)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from advscale.attacks.registry import attack_help
from advscale.attacks.settings import AttackSettings
from advscale.core.options import parse_fields, parse_shard
from advscale.errors import AdvscaleError

PathLike = str | os.PathLike[str]
Emit = Callable[[dict[str, Any]], None]

__all__ = ["AttackSettings", "attack", "attack_help"]


def attack(checkpoints: PathLike | Sequence[PathLike], *, data: PathLike | None = None,
           device: str = "auto", state: PathLike | None = None,
           results: PathLike | None = None, force: bool = False,
           shard: str | tuple[int, int] | None = None, merge: bool = False,
           save_adv: PathLike | None = None, verbose: bool = False,
           emit: Emit | None = None, **settings: Any) -> list[dict[str, Any]]:
    """Evaluate checkpoints (files, run directories or globs); one ``attack`` record each.

    ``settings`` are :class:`~advscale.attacks.settings.AttackSettings` fields: ``attack`` (a
    registered attack: {attacks}), ``norm`` (``linf`` or ``l2``), ``eps`` (8/255 for
    L∞, 0.5 for L2; text fractions work), ``steps`` (PGD default 40), ``step_size`` (2/255 L∞,
    2.5·eps/steps L2), ``n`` images of ``data`` in file order, ``batch_size``, ``chunk_size``,
    ``seed``, ``gradient`` (``exact``, or ``bpda`` through MeanSparse layers), ``precision``
    (``fp32``, ``bf16``, ``tf32``). Under ``torchrun`` each rank attacks its share of the chunks
    and rank 0 returns the merged records. ``state``/``results``
    make the evaluation resumable and skip checkpoints already evaluated (``force`` re-runs);
    ``shard`` (``"i/k"``) attacks one share of the chunks and returns ``attack.chunk`` records;
    ``merge`` combines such records (``checkpoints`` are then their JSONL files);
    ``save_adv`` writes the adversarial images (HDF5). ``emit`` gets each record as it is made.
    """
    specs = [checkpoints] if isinstance(checkpoints, str | os.PathLike) else list(checkpoints)
    out: list[dict[str, Any]] = []

    def keep(rec: dict[str, Any]) -> None:
        out.append(rec)
        if emit is not None:
            emit(rec)

    if merge:
        from advscale.attacks.merge import merge_chunk_records  # torch: imported when run

        for rec in merge_chunk_records(specs, results=results,
                                       config={"merge": [os.fspath(s) for s in specs]}):
            keep(rec)
        return out
    if data is None:
        raise AdvscaleError("data TEST.h5 is required (the test images to attack)", field="data")
    parsed = parse_fields(AttackSettings, settings)
    for key in ("attack", "norm", "gradient", "precision"):
        if isinstance(parsed.get(key), str):
            parsed[key] = parsed[key].strip().lower()
    request = AttackSettings(**parsed)
    request.resolved()  # a typo'd attack or a bad value fails before any file is opened
    from advscale.attacks.distributed import attack_torchrun, torchrun_world
    from advscale.attacks.evaluate import attack_checkpoints  # torch: imported when run

    if torchrun_world() > 1:  # under torchrun: one shard per rank, rank 0 merges and writes
        if shard is not None:
            raise AdvscaleError("shard and torchrun both split the chunks: give one of them",
                                field="shard")
        for rec in attack_torchrun(specs, data, request, device=device, state=state,
                                   results=results, force=force, save_adv=save_adv,
                                   verbose=verbose):
            keep(rec)
        return out
    shard_ik = (0, 1) if shard is None else parse_shard(shard) if isinstance(shard, str) else shard
    for rec in attack_checkpoints(specs, data, request, device=device, state=state,
                                  results=results, force=force, shard=shard_ik,
                                  save_adv=save_adv, verbose=verbose):
        keep(rec)
    return out


def _document_attacks() -> None:
    """Fill :func:`attack`'s docstring with the registered attacks (torch-free)."""
    if attack.__doc__ and "{attacks}" in attack.__doc__:
        attack.__doc__ = attack.__doc__.replace("{attacks}", attack_help())


_document_attacks()
