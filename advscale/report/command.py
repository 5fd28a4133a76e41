"""``advscale report`` as a library function: records files and laws in, a ``report`` record out."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from advscale.core.outputs import check_output_dir, output_dir
from advscale.laws.law import load_law_doc
from advscale.records import make_record
from advscale.records.runs import Sources, expand_sources, is_sources, iter_tagged, tag_records
from advscale.report.accuracy import ACC_FLOOR_PCT
from advscale.report.page import build_report
from advscale.report.scoring import held_out_errors


def held_out_note(e: dict[str, Any]) -> str:
    """One line about a held-out run's prediction error."""
    return (f"Held-out run {e['run_id']} ({e['model']}, D={e['samples_seen']:,}): actual "
            f"{e['target']} {e['actual']:.4f}, predicted {e['predicted']:.4f} "
            f"({100 * e['rel_error']:+.1f}%)")


def report_record(
    records: Sources | Sequence[Mapping[str, Any]],
    out: str | os.PathLike[str],
    laws: Sequence[str | Mapping[str, Any]] = (),
    held_out: Sequence[str] = (),
    title: str = "advscale scaling study",
    published: Sequence[Mapping[str, Any]] = (),
    force: bool = False,
    acc_floor: float = ACC_FLOOR_PCT,
) -> dict[str, Any]:
    """Write the figures and ``report.html`` into ``out``; return the ``report`` record.

    ``out`` is a folder the report owns: missing, empty, or (with ``force``) an earlier
    report's, replaced as a whole (built beside it, then swapped in; no stale figures). A
    non-empty folder advscale did not make is refused; on failure nothing new is left.

    ``records`` are JSONL files (``-`` = stdin) of train.eval, attack, energy and fit records,
    or the records themselves, grouped into runs by :mod:`advscale.records.runs`; ``laws`` are
    fit files, preset names or fit records;
    ``held_out`` run ids left out of the fit get their prediction error reported (the notes
    on the page, and ``held_out`` in the record); ``acc_floor`` (percent) is the accuracy
    figure's axis floor.
    """
    check_output_dir(out, force)  # before anything is read
    given = not isinstance(records, str | os.PathLike) and any(
        isinstance(r, Mapping) for r in records)
    # tagged with their files (or positions), for the joining rule
    recs = list(tag_records(records) if given else iter_tagged(records))  # type: ignore[arg-type]
    docs = [dict(spec) if isinstance(spec, Mapping) else load_law_doc(spec) for spec in laws]
    errors = held_out_errors(recs, docs, held_out)
    sources = ["<records>"] if given else (
        [records] if isinstance(records, str | os.PathLike) else list(records))
    inputs = [s for s in [*sources, *laws] if isinstance(s, str | os.PathLike)]
    with output_dir(out, force=force, inputs=inputs) as tmp:
        summary = _moved(build_report(recs, tmp, laws=docs, title=title,
                                      notes=[held_out_note(e) for e in errors],
                                      held_out=[(e["actual"], e["predicted"]) for e in errors],
                                      published=[dict(r) for r in published],
                                      acc_floor=acc_floor),
                         str(tmp), str(out))
    config = {"records": [str(s) for s in sources],
              "laws": [s if isinstance(s, str) else "<fit record>" for s in laws],
              "out": str(out)}
    return make_record("report", {**summary, "held_out": errors}, config=config)


def _moved(value: Any, old: str, new: str) -> Any:
    """``value`` with paths under the build folder ``old`` renamed to ``new``."""
    if isinstance(value, str):
        return new + value[len(old):] if value == old or value.startswith(old + os.sep) \
            else value
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    return value


def report(records: Sources | Sequence[Mapping[str, Any]], out: str | os.PathLike[str] = "report",
           *, laws: Sequence[str | Mapping[str, Any]] = (), held_out: Sequence[str] = (),
           title: str = "advscale scaling study", force: bool = False) -> dict[str, Any]:
    """:func:`report_record` with shell globs in ``records`` expanded (the public API's
    ``advscale.report``)."""
    recs = expand_sources(records) if is_sources(records) else [dict(r) for r in records]
    return report_record(recs, out, laws=list(laws), held_out=held_out, title=title,
                         force=force)
