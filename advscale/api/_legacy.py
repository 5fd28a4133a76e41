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

import io
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

PathLike = str | os.PathLike[str]
Records = Iterable[Mapping[str, Any]] | PathLike | Sequence[PathLike]


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
           title: str = "advscale scaling study") -> dict[str, Any]:
    """Write figures and ``report.html`` into ``out``; the ``report`` record.

    ``records``: record dicts or JSONL paths/globs (train.eval, attack, energy, fit);
    ``laws``: fit records, preset names or fit files; ``held_out``: run ids whose prediction
    error the report states.
    """
    from advscale.report.command import report as write_report

    return write_report(records, out, laws=laws, held_out=held_out, title=title)


def read_records(sources: PathLike | Sequence[PathLike] = "-",
                 kinds: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """Records from JSONL files or globs (``-`` is stdin), optionally only ``kinds``."""
    from advscale.records import read_records as read
    from advscale.records.runs import expand_sources

    return read(expand_sources(sources), kinds=kinds)
