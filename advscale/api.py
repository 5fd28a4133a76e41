"""The public Python API: one function per subcommand, for notebooks and scripts.

Each function returns what the command prints: JSONL records as dicts (``kind``, ``schema``,
``provenance`` and the payload; docs/formats.md). Nothing is printed on stdout; progress and
notes go to stderr. Errors raise :class:`advscale.AdvscaleError` with a one-line message.
This module is torch-free at import: each function imports its layer when called.

=================  =====================================  ==============================
function           does                                   library underneath
=================  =====================================  ==============================
``train``          one adversarial-training run           ``training.loop.train``
``attack``         AutoAttack / PGD of checkpoints        ``attacks.evaluate``
``count_flops``    FLOPs of a model under a recipe        ``training.flops``
``measure_energy`` energy of a command, log or FLOPs      ``energy.measure``
``fit``            a scaling law from records             ``laws.fit``
``predict``        what a law says for a query            ``laws.predict``
``report``         figures and report.html                ``report.command``
``read_records``   records from JSONL files               ``records``
=================  =====================================  ==============================
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from advscale.errors import AdvscaleError

PathLike = str | os.PathLike[str]
Records = Iterable[Mapping[str, Any]] | PathLike | Sequence[PathLike]


def train(data: PathLike, out: PathLike, *, resume: bool = False,
          **options: Any) -> list[dict[str, Any]]:
    """Train (or with ``resume`` continue) one run into directory ``out``; its records.

    ``options`` are :class:`advscale.training.config.TrainConfig` fields: ``model``
    (``wrn-28-10``), ``samples`` (D, training samples seen), ``loss`` (``trades``),
    ``pgd_steps``, ``eval_data``, ``eval_n``, ``batch_size``, ``lr``, ``seed``, ``init`` (start
    from a checkpoint, published ``.pt`` files included), ... The
    records (``train.eval``, one per evaluation) are also in ``out/records.jsonl``; the EMA
    checkpoint is ``out/last.safetensors``.
    """
    from advscale.training.config import TrainConfig, apply_init
    from advscale.training.loop import train as run_training

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise AdvscaleError(f"train: unknown option(s) {', '.join(unknown)}; see TrainConfig")
    cfg = TrainConfig(data=os.fspath(data), **apply_init(options))
    return run_training(cfg, out, resume=resume, stdout=io.StringIO())


def attack(checkpoints: PathLike | Sequence[PathLike], *, data: PathLike,
           attack: str = "aa-standard", eps: float | None = None, steps: int | None = None,
           step_size: float | None = None, n: int | None = None, batch_size: int = 250,
           chunk_size: int = 1000, seed: int = 0, device: str = "auto",
           state: PathLike | None = None, results: PathLike | None = None,
           save_adv: PathLike | None = None, norm: str = "linf",
           gradient: str = "exact", precision: str = "fp32") -> list[dict[str, Any]]:
    """Evaluate checkpoints (files, run directories or globs); one ``attack`` record each.

    ``attack``: a registered attack ({attacks}) PGD's ``steps`` default 40 and ``step_size``
    2/255 (L∞) or 2.5·eps/steps (L2). ``norm``: ``linf`` (default) or ``l2``; ``eps``
    defaults to 8/255 (L∞) or 0.5 (L2). ``n`` images of ``data`` in file order.
    ``state``/``results`` make the evaluation resumable and skip checkpoints already
    evaluated; ``save_adv`` writes the adversarial images (HDF5). ``gradient="bpda"``:
    MeanSparse layers pass gradients straight through. ``precision``: ``fp32``
    (leaderboard numbers), ``bf16`` or ``tf32`` (docs/attack.md).
    """
    from advscale.attacks.evaluate import attack_checkpoints
    from advscale.attacks.settings import AttackSettings

    specs = [checkpoints] if isinstance(checkpoints, str | os.PathLike) else list(checkpoints)
    settings = AttackSettings(attack=attack.strip().lower(), eps=eps, steps=steps,
                              step_size=step_size, n=n, batch_size=batch_size,
                              chunk_size=chunk_size, seed=seed, norm=norm,
                              gradient=gradient, precision=precision)
    return list(attack_checkpoints(specs, data, settings, device=device, state=state,
                                   results=results, save_adv=save_adv))


def _document_attacks() -> None:
    """Fill :func:`attack`'s docstring with the registered attacks (torch-free)."""
    from advscale.attacks.registry import attack_help

    if attack.__doc__ and "{attacks}" in attack.__doc__:
        attack.__doc__ = attack.__doc__.replace("{attacks}", attack_help())


_document_attacks()


def count_flops(model: str, *, loss: str = "trades", pgd_steps: int = 10,
                samples: int | None = None, method: str = "auto",
                check_constant: float | None = None, **options: Any) -> dict[str, Any]:
    """The ``flops`` record of ``model`` trained with ``loss`` (``trades``, ``pgd-at``,
    ``standard``) and ``pgd_steps`` attack steps: forward FLOPs per image, training FLOPs
    per sample, and with ``samples`` (D) the run's total ``train_flops``. SI FLOPs,
    counted on the meta device (no memory, seconds even for WRN-94-16).
    """
    from advscale.training.flops import flops_record

    return flops_record(model, loss, pgd_steps, samples=samples, method=method,
                        check_constant=check_constant, **options)


def measure_energy(command: Sequence[str] | None = None, **options: Any) -> dict[str, Any]:
    """The ``energy`` record of running ``command`` (argv list), measured by NVML/RAPL
    counters where readable and estimated (labelled so) otherwise; or, with
    ``from_log=`` (an nvidia-smi CSV) or ``flops=`` (and ``device=``), from those instead.
    Options are :func:`advscale.energy.measure.measure_energy`'s. The command's stdout is
    captured, not printed.
    """
    from advscale.energy.measure import measure_energy as measure

    sink = io.BytesIO()
    result = measure(list(command) if command is not None else None, out=sink, **options)
    return result.record


def fit(records: Records, *, approach: str = "2", **options: Any) -> dict[str, Any]:
    """Fit a scaling law; the ``fit`` record (the law: ``form``, ``params``, ``target``, ...).

    ``records``: record dicts, or JSONL paths/globs. ``approach``: ``1``, ``2``, ``3``,
    ``power-law`` or ``gbr`` (or a registry name, e.g. ``approach3``). Options are
    :func:`advscale.laws.fit.fit_law`'s (``target``, ``n_boot``, ``filters``, ``seed``, ...).
    """
    from advscale.laws.fit import fit_record
    from advscale.records.runs import expand_sources, is_sources

    if is_sources(records):
        return fit_record(expand_sources(records), approach=approach, **options)
    return fit_record(records=[dict(r) for r in records], approach=approach, **options)


def predict(law: Mapping[str, Any] | str, query: Mapping[str, Any] | None = None, *,
            accuracy: bool = False, **fields: Any) -> dict[str, Any]:
    """What ``law`` predicts for one query; the ``prediction`` record.

    ``law``: a ``fit`` record, a preset name (e.g. ``bartoldson2024-approach3``) or a fit
    file. The query is ``query`` and/or keywords: ``flops=`` (a budget: N*, D*, loss), or
    ``n=``/``d=`` (a model and data size), with ``fid=``, ``omega_n=`` where the law has them.
    ``accuracy`` adds the law's loss → accuracy map.
    """
    from advscale.laws.law import Law
    from advscale.laws.predict import prediction_record

    the_law = Law.load(law) if isinstance(law, str) else Law(dict(law))
    return prediction_record(the_law, {**(query or {}), **fields}, accuracy=accuracy)


def report(records: Records, out: PathLike = "report", *,
           laws: Sequence[Mapping[str, Any] | str] = (), held_out: Sequence[str] = (),
           title: str = "advscale scaling study", force: bool = False) -> dict[str, Any]:
    """Write figures and ``report.html`` into ``out``; the ``report`` record.

    ``out`` is a folder the report owns; an earlier report there is replaced only with
    ``force``, and a non-empty folder advscale did not make is refused.

    ``records``: record dicts or JSONL paths/globs (train.eval, attack, energy, fit);
    ``laws``: fit records, preset names or fit files; ``held_out``: run ids whose prediction
    error the report states.
    """
    from advscale.report.command import report as write_report

    return write_report(records, out, laws=laws, held_out=held_out, title=title, force=force)


def read_records(sources: PathLike | Sequence[PathLike] = "-",
                 kinds: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """Records from JSONL files or globs (``-`` is stdin), optionally only ``kinds``."""
    from advscale.records import read_records as read
    from advscale.records.runs import expand_sources

    return read(expand_sources(sources), kinds=kinds)
