"""Backtesting a law: fit on the runs outside an expression, predict the runs inside it.

``fit --holdout EXPR`` answers the question behind every GPU-year decision: how well does a law
fitted on cheap runs predict expensive ones? :func:`backtest_record` fits the law on the points
where ``EXPR`` (a ``--filter`` expression, :mod:`advscale.laws.filters`) is false, then
predicts every held-out run (where it is true) from its own N, D, FID (Approaches 2, 3) or
FLOPs (the power law: against the best held-out run per FLOPs bin, since that law is the
envelope of the best runs). The fit record gains ``backtest``:

* ``holdout`` (the expression), ``n_fit_runs``, ``n_held_out``, ``quantity`` (the law's);
* ``runs``: per held-out run ``{run_id, n, d, fid, flops, actual, predicted, error,
  rel_error, band, in_band}`` (``error`` = predicted − actual in the law's quantity,
  ``rel_error`` = error / actual, ``band`` the 95% bootstrap band of the prediction);
* ``mae``, ``rmse``, ``rmse_log`` (of ln predicted − ln actual), ``mean_rel_error`` (the bias),
  ``coverage`` (fraction of held-out runs inside their band; null without bootstrap) and
  ``band_level``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws.approach import get_approach, list_approaches, option_names
from advscale.laws.data import Point, apply_filters, collect_points, iter_tagged, read_runs
from advscale.laws.filters import RecordFilter
from advscale.laws.fit import fit_record
from advscale.laws.law import Law, band
from advscale.laws.powerlaw import best_per_bin


def backtest_record(sources: str | os.PathLike | Iterable[str | os.PathLike] = "-", *,
                    holdout: str, records: Iterable[dict[str, Any]] | None = None,
                    command: str | None = None, **options: Any) -> dict[str, Any]:
    """The ``fit`` record of the runs outside ``holdout``, with ``backtest`` (module doc).

    ``options`` are :func:`advscale.laws.fit.fit_law`'s (``approach``, ``target``, ...).
    """
    RecordFilter(holdout)
    appr = get_approach(str(options.get("approach")))
    if not (appr.supports("predict") or appr.supports("at_budget")):
        able = [a.option for a in map(get_approach, list_approaches())
                if a.supports("predict") or a.supports("at_budget")]
        raise AdvscaleError(f"holdout: a {appr.name} fit does not predict a run's own value; "
                            f"backtest approach {', '.join(able)}", field="holdout")
    recs = (list(records) if records is not None
            else [t.rec for t in iter_tagged(_files(sources), options.get("stdin"))])
    given = list(options.pop("filters", []) or [])
    options.pop("stdin", None)
    rec = fit_record(_files(sources), records=recs, filters=[*given, f"not ({holdout})"],
                     command=command, **options)
    held = _held_points(rec, recs, [*given, holdout])
    if not held:
        raise AdvscaleError(f"holdout {holdout!r}: no run of the records lies inside it",
                            field="holdout")
    rec["backtest"] = evaluate(Law(dict(rec, name="backtest")), held, holdout, rec["n_runs"])
    rec["provenance"]["config"]["holdout"] = holdout
    return rec


def _files(sources: Any) -> list[str]:
    return [os.fspath(sources)] if isinstance(sources, str | os.PathLike) else [
        os.fspath(s) for s in sources]


def _held_points(fit: dict[str, Any], recs: list[dict[str, Any]], exprs: list[str]
                 ) -> list[Point]:
    """The held-out runs' points, collected as the fit collected its own."""
    law = Law(dict(fit, name="backtest"))
    appr = law.approach
    config = fit["provenance"]["config"] or {}
    own = appr.make_options({k: config[k] for k in option_names(type(appr)) if k in config})
    pts = collect_points(read_runs(records=recs), fit["target"], fit.get("points", "final"),
                         config.get("attack", "aa-standard"), appr.needs_for(own))
    pts = apply_filters(pts, exprs)
    if law.needs() == "flops" and pts:
        keep = best_per_bin(np.array([p.flops for p in pts]), np.array([p.value for p in pts]))
        pts = [pts[i] for i in keep]
    return pts


def evaluate(law: Law, held: list[Point], holdout: str, n_fit_runs: int) -> dict[str, Any]:
    """Per-run errors, their summary and bootstrap-band coverage (module doc)."""
    samples = law.samples()
    runs = []
    for p in held:
        actual = 1.0 - p.value if law.quantity == "error" else p.value
        if law.needs() == "flops":
            pred = float(law.at_budget(p.flops))
            b = band(lambda s, f=p.flops: law.at_budget(f, s), samples)
        else:
            pred = float(law.value(p.n, p.d, p.fid))
            b = band(lambda s, q=p: law.value(q.n, q.d, q.fid, s), samples)
        runs.append({"run_id": p.run_id, "n": p.n, "d": p.d, "fid": p.fid, "flops": p.flops,
                     "actual": actual, "predicted": pred, "error": pred - actual,
                     "rel_error": (pred - actual) / actual if actual else None, "band": b,
                     "in_band": (b[0] <= actual <= b[1]) if b else None})
    err = np.array([r["error"] for r in runs])
    logs = [math.log(r["predicted"] / r["actual"]) for r in runs
            if r["actual"] > 0 and r["predicted"] > 0]
    rels = [r["rel_error"] for r in runs if r["rel_error"] is not None]
    inside = [r["in_band"] for r in runs if r["in_band"] is not None]
    return {"holdout": holdout, "quantity": law.quantity, "n_fit_runs": n_fit_runs,
            "n_held_out": len(runs), "runs": runs, "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(np.mean(err ** 2))),
            "rmse_log": float(np.sqrt(np.mean(np.square(logs)))) if logs else None,
            "mean_rel_error": float(np.mean(rels)) if rels else None,
            "coverage": (sum(inside) / len(inside)) if inside else None,
            "band_level": 0.95}


def summary_line(bt: dict[str, Any]) -> str:
    """One line for stderr about a backtest."""
    cov = bt["coverage"]
    return (f"backtest: fitted on {bt['n_fit_runs']} runs outside {bt['holdout']!r}, "
            f"predicted {bt['n_held_out']} inside: MAE {bt['mae']:.4g}, RMSE {bt['rmse']:.4g}"
            + (f", mean relative error {100 * bt['mean_rel_error']:+.2f}%"
               if bt["mean_rel_error"] is not None else "")
            + (f", {100 * cov:.0f}% inside their 95% bands" if cov is not None else
               " (no bootstrap bands)"))
