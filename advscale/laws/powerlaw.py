"""Debenedetti et al. (2024): power laws of the best accuracy (and its cost) against FLOPs.

The FLOPs range of the runs is split into 19 log-spaced bins (``--bins N``); in each non-empty
bin the run with the best accuracy (lowest value for a loss) is kept — the best-performance
envelope — and

    accuracy = C · FLOPs^α

is fitted by least squares in log-log space, with the R² of that regression. The same best runs
give power laws of other fields against FLOPs (electricity cost, energy, CO2: ``--also``).
FLOPs are plain FLOPs here; see :mod:`advscale.laws.presets` for the paper's own constants.
``--x FIELD`` fits the law against another field of the runs instead of ``train_flops`` (e.g.
``cost_usd`` from joined energy records): bins, envelope and law are then of that field. The
power law reads only the target and x: ``params`` and ``samples_seen`` may be missing.

:class:`PowerLaw` is the registered approach (``power-law``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from advscale.core.options import option
from advscale.errors import AdvscaleError
from advscale.laws import bootstrap, summary
from advscale.laws.approach import Approach, FitData, register_approach
from advscale.laws.approach1 import loglog_fit
from advscale.laws.data import Needs, Point, RecordSet, is_loss
from advscale.laws.optimal import budget_power

N_BINS = 19
PUBLIC = ("C", "alpha")
DEFAULT_X = "train_flops"
PANEL = "Power law (--approach power-law)"


@dataclass
class PowerLawOptions:
    """The power law's own fit options (``advscale fit --approach power-law``)."""

    bins: int = option(N_BINS, help="Log-spaced bins of the x range.", panel=PANEL)
    x: str = option(DEFAULT_X, help="The field the law is of: train_flops, or a numeric field of"
                    " the runs' records, e.g. cost_usd from joined energy records.", panel=PANEL)
    also: list[str] = option(default_factory=list, help="Also fit FIELD (e.g. cost_usd, "
                             "energy_kwh) against the law's x for the same best runs "
                             "(repeatable).", panel=PANEL)


def best_per_bin(flops: np.ndarray, value: np.ndarray, n_bins: int = N_BINS,
                 higher_is_better: bool = True) -> np.ndarray:
    """Indices of the best point in each non-empty log-spaced FLOPs bin (ascending FLOPs)."""
    flops = np.asarray(flops, dtype=float)
    value = np.asarray(value, dtype=float)
    lo, hi = flops.min(), flops.max()
    if hi <= lo:
        return np.array([int(np.argmax(value) if higher_is_better else np.argmin(value))])
    edges = np.geomspace(lo, hi, n_bins + 1)
    which = np.clip(np.searchsorted(edges, flops, side="right") - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        idx = np.flatnonzero(which == b)
        if idx.size:
            v = value[idx]
            out.append(int(idx[np.argmax(v) if higher_is_better else np.argmin(v)]))
    return np.array(out, dtype=int)


def fit(flops: np.ndarray, value: np.ndarray, extra: dict[str, np.ndarray] | None = None,
        n_bins: int = N_BINS, higher_is_better: bool = True) -> dict:
    """Fit ``value = C·FLOPs^α`` on the per-bin best points, plus laws for ``extra`` fields."""
    value = np.asarray(value, dtype=float)
    if np.any(value <= 0):
        raise AdvscaleError("power law: target values must be > 0 to fit in log-log space")
    sel = best_per_bin(flops, value, n_bins, higher_is_better)
    if sel.size < 3:
        raise AdvscaleError(
            f"power law needs best points in at least 3 FLOPs bins; got {sel.size} (runs must "
            f"span a range of training FLOPs)"
        )
    f = np.asarray(flops, dtype=float)[sel]
    main = loglog_fit(f, value[sel])
    out = {"params": {"C": main["k"], "alpha": main["slope"]}, "r2": main["r2"],
           "bins_used": int(sel.size), "selected": sel, "also": {}}
    for name, arr in (extra or {}).items():
        y = np.asarray(arr, dtype=float)[sel]
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() < 3:
            raise AdvscaleError(f"power law of {name!r}: fewer than 3 best runs carry it (> 0)")
        law = loglog_fit(f[ok], y[ok])
        out["also"][name] = {"C": law["k"], "alpha": law["slope"], "r2": law["r2"],
                             "n": int(ok.sum())}
    return out


PAPER_CONVENTION = "Debenedetti et al. 2024's units: accuracy in percent, FLOPs in TFLOPs"
TFLOPS = 1e12


def paper_units(params: dict[str, float], also: dict[str, dict[str, Any]], accuracy: bool
                ) -> dict[str, Any]:
    """The fit in Debenedetti et al.'s convention (the paper's C = 50.86, 7.0e-6): x in TFLOPs,
    an accuracy in percent; ``value = C_paper · (F / 1e12)^α``, the same α.

    ``C_paper = C · 1e12^α`` (× 100 for an accuracy); each ``also`` field keeps its own unit
    (USD, kg, kWh) with ``C · 1e12^α``.
    """
    scale = 100.0 if accuracy else 1.0
    c = scale * params["C"] * TFLOPS ** params["alpha"]
    unit = " (%)" if accuracy else ""
    out: dict[str, Any] = {
        "convention": PAPER_CONVENTION, "x_unit": "TFLOPs",
        "value_unit": "percent" if accuracy else "as fitted", "C": c, "alpha": params["alpha"],
        "formula": f"{c:.4g}·TFLOPs^{params['alpha']:.4g}{unit}",
        "also": {name: {"C": a["C"] * TFLOPS ** a["alpha"], "alpha": a["alpha"],
                        "formula": f"{a['C'] * TFLOPS ** a['alpha']:.3g}·TFLOPs^"
                                   f"{a['alpha']:.4g}"} for name, a in also.items()},
    }
    return out


def predict(params: dict[str, float], flops) -> np.ndarray:
    """``C · FLOPs^α`` at ``flops`` (plain FLOPs)."""
    return params["C"] * np.asarray(flops, dtype=float) ** params["alpha"]


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def field_of_run(rs: RecordSet, p: Point, name: str) -> float:
    """Field ``name`` of the point's record, else of its run's latest other record (NaN)."""
    v = _number(p.rec.get(name))
    if v is not None:
        return v
    run = rs.runs.get(p.run_id)
    for t in reversed(run.others if run else []):
        v = _number(t.rec.get(name))
        if v is not None:
            return v
    return float("nan")


def x_values(data: FitData, xname: str) -> tuple[list[Point], np.ndarray]:
    """The points that carry the law's x (``train_flops``, or a field of the run), and x.

    Points without the field are dropped (logged); a value <= 0 is an error with a hint.
    """
    pts = data.points
    if xname == DEFAULT_X:
        return pts, np.array([p.flops for p in pts], dtype=float)
    xs = np.array([field_of_run(data.runs, p, xname) for p in pts])
    ok = np.isfinite(xs)
    if not ok.any():
        raise AdvscaleError(f"x {xname}: no point's record (or joined energy record) has "
                            f"a numeric {xname!r}", field="x")
    if not ok.all():
        data.log(f"x {xname}: dropped {int((~ok).sum())} of {len(pts)} points without it")
    if np.any(xs[ok] <= 0):
        raise AdvscaleError(f"x {xname}: {int((xs[ok] <= 0).sum())} points have {xname} <= 0,"
                            f" which a log-log fit cannot use", field="x")
    return [p for p, k in zip(pts, ok, strict=True) if k], xs[ok]


def _bootstrap(flops: np.ndarray, value: np.ndarray, sel: np.ndarray, data: FitData
               ) -> dict[str, Any]:
    """Resample the per-bin best points (the envelope), not runs.

    A bootstrap over runs drops the best run of a bin in a third of the replicates and biases
    a maximum down.
    """
    fs, vs = flops[sel], value[sel]

    def refit(rows: np.ndarray) -> np.ndarray | None:
        if np.unique(fs[rows]).size < 2:
            return None
        law = loglog_fit(fs[rows], vs[rows])
        return np.array([law["k"], law["slope"]])

    boot = bootstrap.run_bootstrap(np.arange(sel.size), vs, refit,
                                   lambda th, rows: th[0] * fs[rows] ** th[1], data.n_boot,
                                   data.seed, data.progress)
    return summary.boot_block(list(PUBLIC), boot,
                              resampling="the per-bin best points, with replacement")


@register_approach
class PowerLaw(Approach):
    """Debenedetti et al.: the best accuracy per log-spaced FLOPs bin as ``C·FLOPs^α``."""

    name = "power-law"
    option = "power-law"
    params = PUBLIC
    default_target = "aa_acc"
    needs = Needs(flops=True, nd=False)
    Options = PowerLawOptions
    figures = ("accuracy_vs_flops", "energy_vs_flops")

    def needs_for(self, options: PowerLawOptions | None) -> Needs:
        """FLOPs are needed only for a law of FLOPs (``x`` is ``train_flops``)."""
        x = options.x if options is not None else DEFAULT_X
        return self.needs if x == DEFAULT_X else Needs(nd=False)

    def fit(self, data: FitData) -> dict[str, Any]:
        opts = data.options or PowerLawOptions()
        higher, bins, xname = not is_loss(data.target), opts.bins, opts.x
        if bins < 1:
            raise AdvscaleError(f"bins must be >= 1, got {bins}", field="bins")
        pts, flops = x_values(data, xname)
        value = np.array([p.value for p in pts], dtype=float)
        extra = {name: np.array([field_of_run(data.runs, p, name) for p in pts])
                 for name in opts.also}
        res = fit(flops, value, extra, n_bins=bins, higher_is_better=higher)  # the module's
        out: dict[str, Any] = {
            "form": self.name, "quantity": "accuracy" if higher else "loss",
            "params": res["params"], "also": res["also"], "x": xname,
            "x_range": [float(flops.min()), float(flops.max())],
            "stats": {"r2": res["r2"], "bins": bins, "bins_used": res["bins_used"],
                      "n_points": len(pts), "n_runs": len({p.run_id for p in pts})},
            "selected_runs": [pts[i].run_id for i in res["selected"]],
        }
        if data.n_boot > 0:
            out["bootstrap"] = _bootstrap(flops, value, res["selected"], data)
        p = res["params"]
        data.log(f"power law: {data.target} = {p['C']:.4g} * "
                 f"{'FLOPs' if xname == DEFAULT_X else xname}^{p['alpha']:.4g} "
                 f"(R2 {res['r2']:.3f}, {res['bins_used']} of {bins} bins)")
        if xname == DEFAULT_X:
            out["paper_units"] = paper_units(p, res["also"], higher)
            data.log(f"power law, {PAPER_CONVENTION}: {out['paper_units']['formula']}")
        return out

    def at_budget(self, params: dict, flops) -> np.ndarray:
        return predict(params, flops)

    def inverse(self, params: dict, value: float, fid=0.0, k: float = 0.0,
                higher: bool = True) -> float | None:
        """``C·x^α`` solved for x in closed form (None when the law moves away from it)."""
        return budget_power(params["C"], params["alpha"], value, higher)
