"""``advscale.count_flops``: FLOPs of a model and a training recipe (torch-free at import)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from advscale.core.options import parse_count
from advscale.errors import AdvscaleError

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

__all__ = ["count_flops"]


def count_flops(model: str | Sequence[str] | None = None, *, loss: str = "trades",
                pgd_steps: int = 10, samples: int | str | None = None, method: str = "auto",
                check_constant: float | None = None, models_file: PathLike | None = None,
                annotate: IO[str] | None = None, out: IO[str] | None = None,
                robustbench_id: str | None = None,
                emit: Callable[[dict[str, Any]], None] | None = None,
                **options: Any) -> Any:
    """The ``flops`` record of ``model`` trained with ``loss`` (``trades``, ``pgd-at``,
    ``standard``) and ``pgd_steps`` attack steps: forward FLOPs per image, training FLOPs per
    sample, and with ``samples`` (D; ``"5e7"`` works) the run's total ``train_flops``. SI FLOPs,
    counted on the meta device (no memory, seconds even for WRN-94-16).

    ``model`` may be a list of names (and ``models_file`` a file of them, ``-`` for stdin):
    then a list of records. ``options``: ``activation``, ``num_classes``, ``batch_size`` (of the
    counted step), ``model_kwargs`` (e.g. ``{"img_size": 32}`` for a timm ViT). ``method``:
    ``auto``, ``direct`` or ``linear``. ``annotate``: a JSONL stream whose records get their
    missing FLOPs fields, written to ``out``; returns ``(seen, changed)``.
    ``robustbench_id`` counts a RobustBench leaderboard model at full size (the record adds
    its ``number_forward_passes``).
    """
    from advscale.training import flops as fl  # torch: imported when called

    if method not in fl.METHODS:
        raise AdvscaleError(f"method {method!r}: choose from {', '.join(fl.METHODS)}",
                            field="method")
    if annotate is not None:
        if model or models_file:
            raise AdvscaleError("annotate reads records on stdin; do not also give model",
                                field="annotate,model")
        return _annotate(fl, annotate, out, method)
    extra: dict[str, Any] = {}
    if robustbench_id is not None:
        from advscale.models.robustbench import LEADERBOARD, leaderboard_id, registry_name

        entry = LEADERBOARD[str(leaderboard_id("", robustbench_id))]
        model = [*([model] if isinstance(model, str) else list(model or [])),
                 registry_name(entry)]
        extra = {"robustbench_id": entry.id, "number_forward_passes": entry.forward_passes}
    names = _names(fl, model, models_file)
    d = parse_count(samples, "samples") if isinstance(samples, str) else samples
    kwargs = {k: v for k, v in options.items() if v is not None and v != {}}
    recs = []
    for name in names:
        rec = fl.flops_record(name, loss, pgd_steps, samples=d, method=method,
                              check_constant=check_constant, **kwargs)
        rec.update(extra)
        log.info(fl.summary_line(rec))
        if emit is not None:
            emit(rec)
        recs.append(rec)
    return recs[0] if isinstance(model, str) and models_file is None else recs


def _names(fl: Any, model: str | Sequence[str] | None, models_file: PathLike | None
           ) -> list[str]:
    names = [model] if isinstance(model, str) else list(model or [])
    if models_file is not None:
        if os.fspath(models_file) == "-":
            import sys

            names += list(fl.read_model_names(sys.stdin))
        elif not Path(models_file).is_file():
            raise AdvscaleError(f"{models_file}: no such models file", field="models_file")
        else:
            names += list(fl.read_model_names(Path(models_file).read_text().splitlines()))
    if not names:
        raise AdvscaleError("give model NAME (repeatable), models_file FILE, or annotate",
                            field="model,models_file,annotate")
    return names


def _annotate(fl: Any, lines: Iterable[str], out: IO[str] | None, method: str
              ) -> tuple[int, int]:
    import io

    seen, changed = fl.annotate_lines(lines, out or io.StringIO(), "<stdin>", method=method)
    if seen and not changed:
        log.info(f"all {seen} records already had their FLOPs fields (train fills them) or "
                 "name no model and recipe; passed through unchanged")
    else:
        log.info(f"annotated {changed} of {seen} records")
    return seen, changed
