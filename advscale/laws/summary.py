"""Pieces of a ``fit`` record shared by the approaches: data summary, bootstrap block, bounds.

Each function builds one documented field (docs/formats.md, ``fit``) from points or fit
results; the approaches (:mod:`advscale.laws.approach`) assemble them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE, PAPER_FLOPS_SOURCE
from advscale.laws import bootstrap
from advscale.laws.data import Point, RecordSet, dataset_name

RESAMPLING_RUNS = "runs (all points of a drawn run), with replacement"


def data_summary(pts: list[Point]) -> dict[str, Any]:
    """The ``data`` field: how many points and runs, and the N, D, FLOPs and FID they span.

    A range is null when no point carries the field (a power law needs neither N nor D);
    ``predict`` measures its ``extrapolation`` against these ranges.
    """
    n = np.array([p.n for p in pts if p.n is not None], dtype=float)
    d = np.array([p.d for p in pts if p.d is not None], dtype=float)
    f = np.array([p.flops for p in pts if p.flops is not None], dtype=float)
    fids = sorted({round(p.fid, 6) for p in pts})
    return {"n_points": len(pts), "n_runs": len({p.run_id for p in pts}),
            "params_range": _span(n), "samples_range": _span(d), "flops_range": _span(f),
            "distinct_params": int(np.unique(n).size), "distinct_samples": int(np.unique(d).size),
            "fids": fids[:100]}


def _span(a: np.ndarray) -> list[float] | None:
    return [float(a.min()), float(a.max())] if a.size else None


def run_index(pts: list[Point]) -> np.ndarray:
    """An integer index per point, one per distinct run (for the bootstrap over runs)."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(p.run_id, len(ids)) for p in pts])


def flops_constant(pts: list[Point]) -> tuple[float, str]:
    """``k`` in FLOPs = k·N·D: the records' median, else the paper's 7822; and its source."""
    ks = [p.flops / (p.n * p.d) for p in pts if p.flops]
    if ks:
        return float(np.median(ks)), "records (median train_flops / (params * samples_seen))"
    return PAPER_FLOPS_PER_PARAM_SAMPLE, PAPER_FLOPS_SOURCE


def _min_loss_eval(rs: RecordSet, run_id: str) -> tuple[float, float] | None:
    """(adv_loss, robust_acc) of a run's evaluation with the lowest adv_loss."""
    best = None
    for t in rs.runs[run_id].evals:
        lo, ac = t.rec.get("adv_loss"), t.rec.get("robust_acc")
        if isinstance(lo, int | float) and isinstance(ac, int | float) and (
                best is None or lo < best[0]):
            best = (float(lo), float(ac))
    return best


def accuracy_map(rs: RecordSet, pts: list[Point], runs: str = "fitted",
                 base_dataset: str | None = None, log=None) -> dict[str, Any] | None:
    """Regress robust_acc on adv_loss over each run's minimum-loss evaluation (appendix F.2.2).

    ``runs="fitted"``: the runs of the fitted points; ``runs="base"``: every run of the base
    dataset (``base_dataset``, else the fitted FID group with the most runs), whatever the
    filters and the exclusion rule dropped, as the notebook regresses on DG's runs.
    """
    if runs == "base":
        ids, where = _base_runs(rs, pts, base_dataset), "the base dataset's runs"
        if not ids:
            if log:
                log(f"loss→accuracy map: no runs of the base dataset {base_dataset!r}; none "
                    f"fitted")
            return None
    else:
        ids, where = list(dict.fromkeys(p.run_id for p in pts)), "the fitted runs"
    xs, ys = [], []
    for rid in ids:
        best = _min_loss_eval(rs, rid)
        if best:
            xs.append(best[0])
            ys.append(best[1])
    if len(xs) < 3 or np.unique(xs).size < 2:
        return None
    x, y = np.array(xs), np.array(ys)
    slope, icpt = np.polyfit(x, y, 1)
    st = bootstrap.regression_stats(y, icpt + slope * x)
    return {"slope": float(slope), "intercept": float(icpt), "r2": st["r2"], "n": len(xs),
            "accuracy_field": "robust_acc",
            "source": f"fitted from the records: each run's minimum-adv_loss evaluation, "
                      f"over {where}"}


def base_fid_group(pts: list[Point]) -> float:
    """The FID with the most runs among ``pts`` (ties: the lowest): the paper's DG set."""
    runs: dict[float, set[str]] = {}
    for p in pts:
        runs.setdefault(p.fid, set()).add(p.run_id)
    return min(runs, key=lambda f: (-len(runs[f]), f))


def _base_runs(rs: RecordSet, pts: list[Point], base_dataset: str | None) -> list[str]:
    """Run ids of the base dataset: by name, else the fitted points' FID group."""
    if base_dataset is not None:
        return [rid for rid, run in rs.runs.items()
                if run.evals and dataset_name(run.evals[-1].rec) == base_dataset]
    fid = base_fid_group(pts)
    return [rid for rid, run in rs.runs.items()
            if run.evals and (run.evals[-1].rec.get("fid") or 0.0) == fid]


def boot_block(names: list[str], res: bootstrap.BootstrapResult,
               extra: dict[str, np.ndarray] | None = None,
               resampling: str = RESAMPLING_RUNS) -> dict[str, Any]:
    """The ``bootstrap`` field: intervals of every parameter (and ``extra``), and the samples."""
    mat = res.samples
    iv = ({k: bootstrap.percentile_interval(mat[:, i]) for i, k in enumerate(names)}
          if mat.size else {})
    for k, v in (extra or {}).items():
        iv[k] = bootstrap.percentile_interval(v)
    return {
        "b": int(mat.shape[0]), "ok": res.ok, "seed": res.seed, "level": bootstrap.LEVEL,
        "resampling": resampling, "intervals": iv, "names": names,
        "samples": [[None if not np.isfinite(v) else float(v) for v in row] for row in mat],
    }


def oob(res: bootstrap.BootstrapResult) -> dict[str, float | None]:
    """Median out-of-bag R², RMSE and log RMSE over the replicates (None when none)."""
    def med(a: np.ndarray) -> float | None:
        a = a[np.isfinite(a)]
        return float(np.median(a)) if a.size else None

    return {"oob_r2": med(res.oob_r2), "oob_rmse": med(res.oob_rmse),
            "oob_rmse_log": med(res.oob_rmse_log)}


def at_bound(form: Any, theta: np.ndarray, free: np.ndarray, public: tuple[str, ...]
             ) -> list[str]:
    """Public names of free parameters within 0.1% of their box bound (effectively at it)."""
    out = []
    for i in free:
        lo, hi = form.lower[i], form.upper[i]
        tol = 1e-3 * (hi - lo)
        if theta[i] - lo <= tol or hi - theta[i] <= tol:
            out.append(public[i])
    return out
