"""``advscale.report``: figures and one HTML page from records and laws (torch-free)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from advscale.report.accuracy import ACC_FLOOR_PCT

PathLike = str | os.PathLike[str]
Records = Iterable[Mapping[str, Any]] | PathLike | Sequence[PathLike]
log = logging.getLogger(__name__)

__all__ = ["ACC_FLOOR_PCT", "report"]


def report(records: Records, out: PathLike = "report", *,
           laws: Sequence[Mapping[str, Any] | str] = (), held_out: Sequence[str] = (),
           title: str = "advscale scaling study", published: bool = False,
           runs: str | None = None, force: bool = False,
           acc_floor: float | None = None) -> dict[str, Any]:
    """Write figures and ``report.html`` into ``out``; the ``report`` record.

    ``records``: record dicts or JSONL paths/globs (train.eval, attack, energy, fit);
    ``laws``: fit records, preset names or fit files; ``held_out``: run ids whose prediction
    error the report states (also logged, one line each); ``published`` places the built-in
    published runs on the first Approach 2/3 law (Figures 6 and 7), ``runs`` (JSONL or CSV:
    name, params, samples_seen [, fid]) your own too. ``out`` is a folder the report owns;
    an earlier report there is replaced only with ``force``, and a non-empty folder advscale
    did not make is refused. ``acc_floor``: accuracy (percent) under which a run sits at the
    accuracy figure's axis floor.
    """
    from advscale.laws.published import builtin_runs, load_runs
    from advscale.records.runs import expand_sources, is_sources
    from advscale.report.command import held_out_note, report_record

    recs = expand_sources(records) if is_sources(records) else [dict(r) for r in records]
    table = (builtin_runs() if published else []) + (load_runs(runs) if runs else [])
    rec = report_record(recs, out, laws=list(laws), held_out=held_out, title=title,
                        published=table, force=force,
                        **({} if acc_floor is None else {"acc_floor": acc_floor}))
    for e in rec["held_out"]:
        log.info(held_out_note(e))
    log.info(f"{rec['report']}: {len(rec['figures'])} figures, {rec['runs']} runs, laws "
             f"{', '.join(rec.get('law_names') or []) or 'none'}")
    return rec
