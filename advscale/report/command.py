"""``advscale report`` as a library function: records files and laws in, a ``report`` record out."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from advscale.laws.law import load_law_doc
from advscale.records import make_record
from advscale.records.runs import Sources, expand_sources, is_sources, iter_tagged, tag_records
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
) -> dict[str, Any]:
    """Write the figures and ``report.html`` into ``out``; return the ``report`` record.

    ``records`` are JSONL files (``-`` = stdin) of train.eval, attack, energy and fit records,
    or the records themselves, grouped into runs by :mod:`advscale.records.runs`; ``laws`` are
    fit files, preset names or fit records;
    ``held_out`` run ids left out of the fit get their prediction error reported (the notes
    on the page, and ``held_out`` in the record).
    """
    given = not isinstance(records, str | os.PathLike) and any(
        isinstance(r, Mapping) for r in records)
    # tagged with their files (or positions), for the joining rule
    recs = list(tag_records(records) if given else iter_tagged(records))  # type: ignore[arg-type]
    docs = [dict(spec) if isinstance(spec, Mapping) else load_law_doc(spec) for spec in laws]
    errors = held_out_errors(recs, docs, held_out)
    summary = build_report(recs, out, laws=docs, title=title,
                           notes=[held_out_note(e) for e in errors],
                           held_out=[(e["actual"], e["predicted"]) for e in errors],
                           published=[dict(r) for r in published])
    sources = ["<records>"] if given else (
        [records] if isinstance(records, str | os.PathLike) else list(records))
    config = {"records": [str(s) for s in sources],
              "laws": [s if isinstance(s, str) else "<fit record>" for s in laws],
              "out": str(out)}
    return make_record("report", {**summary, "held_out": errors}, config=config)


def report(records: Sources | Sequence[Mapping[str, Any]], out: str | os.PathLike[str] = "report",
           *, laws: Sequence[str | Mapping[str, Any]] = (), held_out: Sequence[str] = (),
           title: str = "advscale scaling study") -> dict[str, Any]:
    """:func:`report_record` with shell globs in ``records`` expanded (the public API's
    ``advscale.report``)."""
    recs = expand_sources(records) if is_sources(records) else [dict(r) for r in records]
    return report_record(recs, out, laws=list(laws), held_out=held_out, title=title)
