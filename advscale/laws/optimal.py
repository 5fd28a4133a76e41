"""Compute-optimal N*, D* for a FLOPs budget, and the model-size/compute trade-off (Eq. 6).

Training FLOPs are modelled as ``F = k · N · D`` with ``k`` FLOPs per parameter per sample:
7822 in Bartoldson et al. (2024) for TRADES-10 (their FLOPs convention), or the model's own
constant from ``advscale count-flops`` (``flops_per_param_sample``); the paper's is
:data:`advscale.core.units.PAPER_FLOPS_PER_PARAM_SAMPLE`.

* Approach 2 (Eq. 4), analytic: ``N* = G (F/k)^a``, ``D* = G⁻¹ (F/k)^b``,
  ``G = (αA/(βB'))^(1/(α+β))``, ``a = β/(α+β)``, ``b = α/(α+β)``.
* Any law (Approach 3 at FID > 0), numeric: minimise ``L(N, (F/k)/N)`` over ``x = ln N``. For
  Eqs. 3 and 5 this is convex in x (a sum of log-convex terms), so a coarse grid followed by
  bounded Brent on the bracketing cells finds the unique minimum robustly.
* Eq. 6: given ``ω_N`` (model size as a multiple of N*), the multiple ``ω_D`` of D* that keeps
  the loss at L*; the compute overhead is ``ω_N · ω_D − 1`` (a fraction of the optimal FLOPs).
  Analytic for Approach 2, by root finding for any law. When ω_N is so small that no amount of
  data reaches L*, ω_D is infinite (returned as ``inf``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE


def optimal_approach2(params: dict, flops, fid=0.0, k: float = PAPER_FLOPS_PER_PARAM_SAMPLE
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 4: N*, D* for budgets ``flops`` (params may hold arrays: bootstrap samples)."""
    al, be = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
    bq = np.asarray(params["B"], float) * (1 + np.asarray(fid, float)) ** np.asarray(
        params.get("zeta", 0.0), float)
    with np.errstate(all="ignore"):
        g = (al * np.asarray(params["A"], float) / (be * bq)) ** (1 / (al + be))
        c = np.asarray(flops, dtype=float) / k
        n = g * c ** (be / (al + be))
        d = c ** (al / (al + be)) / g
    return n, d


def optimal_numeric(loss: Callable[[np.ndarray, np.ndarray], np.ndarray], flops: float,
                    k: float = PAPER_FLOPS_PER_PARAM_SAMPLE, grid: int = 400
                    ) -> tuple[float, float, float]:
    """N*, D*, L* minimising ``loss(N, D)`` subject to ``k·N·D = flops`` (N, D ≥ 1)."""
    from scipy.optimize import minimize_scalar  # heavy: only when a numeric optimum is asked

    c = float(flops) / k
    if not c > 1:
        raise ValueError(f"budget {flops:g} FLOPs is below one parameter-sample ({k:g} FLOPs)")
    hi = np.log(c)
    xs = np.linspace(0.0, hi, grid)
    with np.errstate(all="ignore"):
        vals = np.asarray(loss(np.exp(xs), c / np.exp(xs)), dtype=float)
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = int(np.argmin(vals))
    lo_x, hi_x = xs[max(i - 1, 0)], xs[min(i + 1, grid - 1)]

    def f(x: float) -> float:
        with np.errstate(all="ignore"):
            v = float(np.asarray(loss(np.exp(x), c / np.exp(x))))
        return v if np.isfinite(v) else np.inf

    best_x, best_f = xs[i], vals[i]
    if hi_x > lo_x:
        r = minimize_scalar(f, bounds=(lo_x, hi_x), method="bounded",
                            options={"xatol": 1e-12, "maxiter": 500})
        if r.fun <= best_f:
            best_x, best_f = float(r.x), float(r.fun)
    n = float(np.exp(best_x))
    return n, c / n, float(best_f)


def tradeoff_approach2(params: dict, n_opt, d_opt, omega_n, fid=0.0) -> np.ndarray:
    """Eq. 6: ω_D keeping Approach 2's loss at L* when N = ω_N·N* (inf when impossible)."""
    al, be = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
    bq = np.asarray(params["B"], float) * (1 + np.asarray(fid, float)) ** np.asarray(
        params.get("zeta", 0.0), float)
    with np.errstate(all="ignore"):
        ratio = np.asarray(params["A"], float) * np.asarray(n_opt, float) ** -al / (
            bq * np.asarray(d_opt, float) ** -be)
        inner = 1 - (np.asarray(omega_n, float) ** -al - 1) * ratio
        return np.where(inner > 0, np.abs(inner) ** (-1 / be), np.inf)


def tradeoff_numeric(loss: Callable[[np.ndarray, np.ndarray], np.ndarray], n_opt: float,
                     d_opt: float, omega_n: float) -> float:
    """ω_D with ``loss(ω_N N*, ω_D D*) = loss(N*, D*)``, by root finding in ln ω_D."""
    from scipy.optimize import brentq  # heavy: only when a numeric trade-off is asked

    target = float(np.asarray(loss(n_opt, d_opt)))

    def g(lw: float) -> float:
        with np.errstate(all="ignore"):
            return float(np.asarray(loss(omega_n * n_opt, np.exp(lw) * d_opt))) - target

    if abs(omega_n - 1) < 1e-15:
        return 1.0
    lo, hi = -60.0, 60.0
    glo, ghi = g(lo), g(hi)
    if not (np.isfinite(glo) and np.isfinite(ghi)) or glo * ghi > 0:
        return float("inf") if ghi > 0 else float("nan")
    return float(np.exp(brentq(g, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=500)))


# -- inverse: the least FLOPs reaching a value ----------------------------------------------------
MAX_LN_FLOPS = float(np.log(1e300))
"""The largest budget an inverse searches (beyond it a target counts as never reached)."""


def budget_power(c: float, slope: float, value: float, higher: bool) -> float | None:
    """The least x with ``c·x^slope`` at or past ``value`` (above for ``higher``), or None when
    the law does not move toward ``value`` with x."""
    if not (c > 0 and value > 0) or slope == 0 or (slope > 0) != higher:
        return None
    with np.errstate(all="ignore"):
        x = float(np.exp(np.log(value / c) / slope))
    return x if np.isfinite(x) and x > 0 else None


def budget_approach2(params: dict, value: float, fid=0.0,
                     k: float = PAPER_FLOPS_PER_PARAM_SAMPLE) -> float | None:
    """Eq. 4's frontier inverted in closed form: ``L*(F) = E' + K (F/k)^(−αβ/(α+β))``.

    ``K = A G^−α + B' G^β``; None when ``value`` is at or below the asymptote ``E'``.
    """
    al, be = float(params["alpha"]), float(params["beta"])
    bq = float(params["B"]) * (1 + fid) ** float(params.get("zeta", 0.0))
    eq = float(params["E"]) * (1 + fid) ** float(params.get("epsilon", 0.0))
    if not (al > 0 and be > 0) or not value > eq:
        return None
    g = (al * float(params["A"]) / (be * bq)) ** (1 / (al + be))
    kk = float(params["A"]) * g ** -al + bq * g ** be
    c = (kk / (value - eq)) ** ((al + be) / (al * be))
    return float(k * c) if np.isfinite(c) else float("inf")


def budget_numeric(frontier: Callable[[float], float], value: float, floor: float,
                   k: float = PAPER_FLOPS_PER_PARAM_SAMPLE) -> float | None:
    """The least F with ``frontier(F) <= value`` for a frontier falling to ``floor``.

    None when ``value <= floor`` (never reached); ``inf`` when not reached below 1e300 FLOPs.
    Root finding in ln F (bracket by decades, then Brent to 1e-13).
    """
    from scipy.optimize import brentq  # heavy: only when an inverse is asked

    if not value > floor:
        return None
    lo = float(np.log(4 * k))  # a budget of 4 parameter-samples: the smallest sensible one

    def g(lf: float) -> float:
        return float(frontier(float(np.exp(lf)))) - value

    if g(lo) <= 0:
        return float(np.exp(lo))
    hi = lo
    while g(hi) > 0:
        lo, hi = hi, hi + np.log(10.0)
        if hi > MAX_LN_FLOPS:
            return float("inf")
    return float(np.exp(brentq(g, lo, hi, xtol=1e-13, rtol=1e-15, maxiter=500)))
