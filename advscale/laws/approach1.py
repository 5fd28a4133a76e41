"""Approach 1 (Chinchilla's Approach 1, Bartoldson et al. 2024 §3.2.1 and appendix F.1).

The envelope of training curves: at each of 1,000 log-spaced training-FLOPs values F spanning
the data, every run whose curve covers F is interpolated there (linearly in log FLOPs) and the
best one — lowest loss (or highest accuracy) — gives L*(F), N*(F) (its parameters) and D*(F)
(its samples seen at F). Only the query points where the envelope improves are kept: F_i is
dropped if some F_j < F_i already reached a better value (the paper's set 𝒬). Log-space
regressions then give

    L*(F) = k_L · F^s,    N*(F) = k_N · F^a,    D*(F) = k_D · F^b.

It needs whole training curves (``train.eval`` records at several points of each run), all of
one dataset (the approach does not model FID).

:class:`Approach1` is the registered approach (``approach1``, ``--approach 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws import bootstrap, summary
from advscale.laws.approach import Approach, FitData, register_approach
from advscale.laws.data import Needs, is_loss
from advscale.laws.optimal import budget_power

N_QUERY = 1000
PUBLIC = ("k_L", "s", "k_N", "a", "k_D", "b")
ENVELOPE_SHOWN = 200
"""At most about this many envelope points are kept in a fit record (evenly thinned)."""


@dataclass
class Curve:
    """One run's training curve: FLOPs, samples seen and target value at each evaluation."""

    run: int
    n: float
    flops: np.ndarray
    d: np.ndarray
    value: np.ndarray


@dataclass
class Envelope:
    """The kept envelope points: FLOPs, best value, N* and D* at each."""

    flops: np.ndarray
    value: np.ndarray
    n: np.ndarray
    d: np.ndarray
    run: np.ndarray


def envelope(curves: list[Curve], lower_is_better: bool = True, n_query: int = N_QUERY
             ) -> Envelope:
    """The envelope of ``curves`` at ``n_query`` log-spaced FLOPs, restricted to improvements."""
    usable = [c for c in curves if c.flops.size >= 2]
    if not usable:
        raise AdvscaleError(
            "approach 1 needs training curves: several train.eval points per run "
            "(all evaluation records, not only the final ones)"
        )
    lo = min(c.flops.min() for c in usable)
    hi = max(c.flops.max() for c in usable)
    grid = np.geomspace(lo, hi, n_query)
    lg = np.log(grid)
    sign = 1.0 if lower_is_better else -1.0
    best = np.full(n_query, np.inf)
    bn = np.full(n_query, np.nan)
    bd = np.full(n_query, np.nan)
    br = np.full(n_query, -1)
    for c in usable:
        order = np.argsort(c.flops)
        lf, v, ld = np.log(c.flops[order]), c.value[order], np.log(c.d[order])
        inside = (lg >= lf[0] - 1e-12) & (lg <= lf[-1] + 1e-12)
        vi = np.interp(lg[inside], lf, v) * sign
        di = np.exp(np.interp(lg[inside], lf, ld))
        idx = np.flatnonzero(inside)
        better = vi < best[idx]
        best[idx[better]] = vi[better]
        bn[idx[better]] = c.n
        bd[idx[better]] = di[better]
        br[idx[better]] = c.run
    have = np.isfinite(best)
    grid, best, bn, bd, br = grid[have], best[have], bn[have], bd[have], br[have]
    # 𝒬: drop F_i when an earlier F_j already had a strictly better value
    running = np.minimum.accumulate(best)
    prev = np.concatenate([[np.inf], running[:-1]])
    keep = best <= prev
    return Envelope(grid[keep], best[keep] * sign, bn[keep], bd[keep], br[keep])


def envelope_notebook(curves: list[Curve], lower_is_better: bool, flops_range: tuple[float,
                      float], n_query: int = N_QUERY) -> Envelope:
    """The envelope as the authors' code draws it (``scaling_law_utils.Analysis``).

    Query points: ``n_query`` log-spaced FLOPs from ``flops_range`` widened by 0.001 decades
    each side. Every run that has started by F is a candidate: linearly interpolated in FLOPs
    (not log FLOPs) inside its curve, its best value past its end; when the best candidate has
    already finished, the point is dropped (not given to the next best). D* at F is
    ``min(1, F / F_max)`` of the run's largest D. Then the same rule as :func:`envelope`: a
    point is kept only if no earlier kept point was better.
    """
    usable = [c for c in curves if c.flops.size >= 1]
    if not usable:
        raise AdvscaleError("approach 1 needs training curves: train.eval points per run")
    lo, hi = np.log10(flops_range[0]) - 0.001, np.log10(flops_range[1]) + 0.001
    grid = np.logspace(lo, hi, n_query)
    sign = 1.0 if lower_is_better else -1.0
    vals = np.full((len(usable), n_query), np.inf)
    for i, c in enumerate(usable):
        order = np.argsort(c.flops, kind="stable")
        f, v = c.flops[order], c.value[order] * sign
        idx = np.searchsorted(f, grid, side="left")
        if f.size > 1:
            inner = np.clip(idx, 1, f.size - 1)
            with np.errstate(all="ignore"):
                w = (grid - f[inner - 1]) / (f[inner] - f[inner - 1])
                val = w * v[inner] + (1 - w) * v[inner - 1]
        else:
            val = np.full(n_query, v[0])
        val = np.where(idx == 0, v[0], np.where(idx >= f.size, v.min(), val))
        vals[i] = np.where(grid >= f[0], val, np.inf)
    best_i = np.argmin(vals, axis=0)
    best = vals[best_i, np.arange(n_query)]
    f_max = np.array([c.flops.max() for c in usable])
    valid = np.isfinite(best) & (grid <= f_max[best_i])
    grid, best, best_i = grid[valid], best[valid], best_i[valid]
    prev = np.concatenate([[np.inf], np.minimum.accumulate(best)[:-1]])
    keep = best <= prev
    grid, best, best_i = grid[keep], best[keep], best_i[keep]
    n = np.array([usable[i].n for i in best_i])
    d = np.array([min(1.0, g / f_max[i]) * usable[i].d.max() for g, i in zip(grid, best_i,
                                                                             strict=True)])
    run = np.array([usable[i].run for i in best_i])
    return Envelope(grid, best * sign, n, d, run)


def loglog_fit(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """OLS of ln y on ln x: y = k · x^slope, with the R² of the log-space regression."""
    lx, ly = np.log(x), np.log(y)
    if np.unique(lx).size < 2:
        return {"k": float("nan"), "slope": float("nan"), "r2": float("nan")}
    slope, icpt = np.polyfit(lx, ly, 1)
    pred = icpt + slope * lx
    ss = np.sum((ly - ly.mean()) ** 2)
    r2 = 1 - np.sum((ly - pred) ** 2) / ss if ss > 0 else float("nan")
    return {"k": float(np.exp(icpt)), "slope": float(slope), "r2": float(r2)}


def fit_envelope(curves: list[Curve], lower_is_better: bool = True,
                 flops_range: tuple[float, float] | None = None) -> dict:
    """Envelope plus the three log-space regressions: params and envelope summary.

    With ``flops_range``, the envelope is the authors' code's (:func:`envelope_notebook`).
    """
    env = (envelope(curves, lower_is_better) if flops_range is None
           else envelope_notebook(curves, lower_is_better, flops_range))
    if np.unique(env.n).size < 2:
        raise AdvscaleError(
            f"approach 1 needs at least 2 distinct model sizes on the envelope; got "
            f"{np.unique(env.n).size} (train more model sizes, or check the records' params)"
        )
    if env.flops.size < 3:
        raise AdvscaleError("approach 1: fewer than 3 envelope points; need denser curves")
    lf = loglog_fit(env.flops, env.value)
    nf = loglog_fit(env.flops, env.n)
    df = loglog_fit(env.flops, env.d)
    params = {
        "k_L": lf["k"], "s": lf["slope"], "k_N": nf["k"], "a": nf["slope"],
        "k_D": df["k"], "b": df["slope"],
    }
    stats = {"r2_L": lf["r2"], "r2_N": nf["r2"], "r2_D": df["r2"],
             "envelope_points": int(env.flops.size),
             "envelope_models": sorted({float(v) for v in env.n})}
    return {"params": params, "stats": stats, "envelope": env}


def curves_from_points(points, lower_is_better: bool = True) -> list[Curve]:
    """Group :class:`advscale.laws.data.Point` s (with FLOPs) into per-run curves."""
    by: dict[str, list] = {}
    for p in points:
        by.setdefault(p.run_id, []).append(p)
    out = []
    for i, ps in enumerate(by.values()):
        ps = sorted(ps, key=lambda p: p.flops)
        out.append(Curve(i, float(ps[-1].n), np.array([p.flops for p in ps], dtype=float),
                         np.array([p.d for p in ps], dtype=float),
                         np.array([p.value for p in ps], dtype=float)))
    return out


def predict(params: dict[str, float], flops) -> dict[str, np.ndarray]:
    """L*, N*, D* at training budgets ``flops`` (plain FLOPs)."""
    f = np.asarray(flops, dtype=float)
    return {"loss": params["k_L"] * f ** params["s"], "n": params["k_N"] * f ** params["a"],
            "d": params["k_D"] * f ** params["b"]}


def _one_dataset(pts: list) -> None:
    fids = sorted({p.fid for p in pts})
    if len(fids) > 1:
        raise AdvscaleError(
            f"approach 1 fits one dataset at a time (it does not model FID); the records have "
            f"FIDs {', '.join(f'{f:g}' for f in fids[:6])}: add e.g. the filters "
            f"'FID == {fids[0]:g}'", field="filters")


def _thinned(env: Envelope) -> dict[str, list[float]]:
    step = max(1, env.flops.size // ENVELOPE_SHOWN)
    return {"flops": env.flops.tolist()[::step], "value": env.value.tolist()[::step],
            "n": env.n.tolist()[::step], "d": env.d.tolist()[::step]}


def _bootstrap(curves: list[Curve], lower: bool, names: list[str], data: FitData,
               flops_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """Refit the envelope on whole runs drawn with replacement."""
    run = np.array([c.run for c in curves])

    def refit(rows: np.ndarray) -> np.ndarray | None:
        sub = [Curve(i, curves[r].n, curves[r].flops, curves[r].d, curves[r].value)
               for i, r in enumerate(rows)]
        try:
            p = fit_envelope(sub, lower, flops_range)["params"]
        except AdvscaleError:
            return None
        return np.array([p[k] for k in names])

    boot = bootstrap.run_bootstrap(run, np.zeros(len(run)), refit,
                                   lambda th, rows: np.zeros(len(rows)), data.n_boot, data.seed,
                                   data.progress)
    return summary.boot_block(names, boot)


def _protocol_points(pts: list, data: FitData) -> tuple[list, tuple[float, float] | None]:
    """The points above the protocol's FLOPs floor, and the authors' envelope's FLOPs range.

    The notebook spans its query points from the least FLOPs among checkpoints strictly past
    the train-fraction floor to the most FLOPs, both taken before the FLOPs floor.
    """
    proto = data.protocol
    flops_range = None
    if proto.envelope == "bartoldson2024":
        past = [p.flops for p in pts if p.rec["train_fraction"] > proto.min_train_fraction]
        flops_range = (min(past or [p.flops for p in pts]), max(p.flops for p in pts))
    if proto.flops_floor:
        kept = [p for p in pts if p.flops > proto.flops_floor]
        data.log(f"approach 1: FLOPs floor {proto.flops_floor:g}: kept {len(kept)} of "
                 f"{len(pts)} evaluations")
        if not kept:
            raise AdvscaleError(f"approach 1: no evaluation above the FLOPs floor "
                                f"{proto.flops_floor:g} (set flops_floor 0 for small runs)",
                                field="flops_floor")
        pts = kept
    return pts, flops_range


@register_approach
class Approach1(Approach):
    """The envelope of training curves (all evaluation points of each run, one dataset)."""

    name = "approach1"
    option = "1"
    params = PUBLIC
    points = "all"
    needs = Needs(flops=True)

    def fit(self, data: FitData) -> dict[str, Any]:
        pts = data.points
        _one_dataset(pts)
        lower = is_loss(data.target)
        pts, flops_range = _protocol_points(pts, data)
        curves = curves_from_points(pts, lower)
        res = fit_envelope(curves, lower, flops_range)
        out: dict[str, Any] = {
            "form": self.name, "quantity": "loss" if lower else "accuracy",
            "params": res["params"], "derived": self.derived(res["params"]),
            "stats": {**res["stats"], "n_points": len(pts), "n_runs": len(curves)},
            "envelope": _thinned(res["envelope"]),
        }
        if data.n_boot > 0:
            out["bootstrap"] = _bootstrap(curves, lower, list(res["params"]), data, flops_range)
        p = res["params"]
        data.log(f"approach 1: envelope of {len(curves)} runs, "
                 f"{res['stats']['envelope_points']} points; N* ~ F^{p['a']:.3f}, "
                 f"D* ~ F^{p['b']:.3f}, L* ~ F^{p['s']:.3f}")
        return out

    def optimal(self, params: dict, flops: float, fid=0.0, k: float = 0.0
                ) -> tuple[float, float, float]:
        """N*, D*, L* from the envelope's regressions (``fid`` and ``k`` play no part)."""
        out = predict(params, flops)
        return float(out["n"]), float(out["d"]), float(out["loss"])

    def inverse(self, params: dict, value: float, fid=0.0, k: float = 0.0,
                higher: bool = False) -> float | None:
        """``L* = k_L F^s`` solved for F (no asymptote: None only when L* moves away)."""
        return budget_power(params["k_L"], params["s"], value, higher)

    def derived(self, params: dict) -> dict[str, float]:
        return {"a": params["a"], "b": params["b"]}
