"""Multistart fitting done right: screen a grid of starts, polish the best with tight tolerances.

Hoffmann et al. (2022) and Bartoldson et al. (2024) run L-BFGS from every point of a grid and
keep the lowest Huber loss. Run naively (numerical gradients, SciPy's default tolerances) that
is slow, and L-BFGS stops early on the nearly flat, nearly-L1 objective of δ = 1e-3 — which
fakes narrow bootstrap intervals (Besiroglu et al., Epoch AI 2024). Here:

1. **Screen**: every grid start takes a few Levenberg–Marquardt steps at once, vectorised over
   all starts (the Huber loss as iteratively reweighted least squares, its exact gradient, and
   a per-start damping that only accepts steps lowering the summed Huber loss). Starts are then
   ranked by the objective they reach.
2. **Polish**: the best ``top_k`` distinct starts are polished by
   ``scipy.optimize.least_squares(loss="huber", f_scale=δ)`` — whose cost is exactly the
   summed Huber loss — with an analytic Jacobian and tolerances near machine precision, then by
   L-BFGS-B on the same summed loss with its analytic gradient and ``ftol``/``gtol`` near
   machine precision. The lower objective wins, whatever the optimiser's ``success`` flag says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advscale.laws.objective import Problem

TIGHT = 1e-15
"""Relative tolerances used when polishing (just above double precision's 2.2e-16)."""

REFIT_ITERS = 500
REFIT_TOL = 1e-13
"""Bootstrap replicates: at most this many vectorised LM steps, until the objective stalls."""


@dataclass
class FitResult:
    """One polished optimum: free parameters ``z``, the summed Huber loss, and how it ended."""

    z: np.ndarray
    objective: float
    method: str = ""
    success: bool = False
    message: str = ""
    nfev: int = 0


@dataclass
class MultiResult:
    """All polished candidates, best first."""

    candidates: list[FitResult]
    n_starts: int
    screen_iters: int
    screen_objectives: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def best(self) -> FitResult:
        return self.candidates[0]

    def summary(self) -> dict[str, Any]:
        """What the search did, for the fit record's ``optimizer`` field."""
        return {
            "starts": self.n_starts,
            "screen_iters": self.screen_iters,
            "polished": len(self.candidates),
            "best_objective": self.best.objective,
            "polished_objectives": [c.objective for c in self.candidates],
            "best_method": self.best.method,
            "best_success_flag": bool(self.best.success),
            "best_message": self.best.message,
        }


BLOCK_ELEMENTS = 1 << 21
"""Starts are screened in blocks of at most this many Jacobian entries (starts × rows × free
parameters; ~16 MB of float64 per array), so memory stays bounded and time linear in the
rows however many starts or rows there are. Every start's path is independent of the others,
so the blocking changes no result."""


def block_size(n_rows: int, n_free: int, limit: int | None = None) -> int:
    """How many starts one screening block holds (at least 1; ``limit``: Jacobian entries,
    default :data:`BLOCK_ELEMENTS`)."""
    return max(1, (limit or BLOCK_ELEMENTS) // max(1, n_rows * max(1, n_free)))


def screen(problem: Problem, starts: np.ndarray, iters: int = 30, tol: float | None = None,
           block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Take up to ``iters`` damped Gauss–Newton (IRLS-Huber) steps from every start, in blocks
    of ``block`` starts (default :func:`block_size`); see :func:`screen_block`."""
    starts = np.atleast_2d(np.asarray(starts, dtype=float))
    k = block or block_size(len(problem.x), starts.shape[1])
    if len(starts) <= k:
        return screen_block(problem, starts, iters, tol)
    batched_w = problem.weights is not None and problem.weights.ndim == 2
    zs, fs = [], []
    for i in range(0, len(starts), k):
        idx = np.arange(i, min(i + k, len(starts)))
        sub = problem.subset(idx) if batched_w else problem
        z, f = screen_block(sub, starts[idx], iters, tol)
        zs.append(z)
        fs.append(f)
    return np.concatenate(zs), np.concatenate(fs)


def screen_block(problem: Problem, starts: np.ndarray, iters: int = 30,
                 tol: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Take up to ``iters`` damped Gauss–Newton (IRLS-Huber) steps from every start at once.

    Returns the improved starts (K, q) and their summed Huber losses (K,). A step is kept only
    if it lowers a start's objective, so the screen never makes a start worse. With ``tol``,
    stops early once every start has stalled: no step in the last 5 improved it by more than
    ``tol`` relative, or its damping has saturated. With (K, n) weights in the problem, K
    independent weighted problems are solved at once (bootstrap replicates).
    """
    lo, hi = problem.lower, problem.upper
    z = np.clip(np.array(starts, dtype=float), lo, hi)
    f = problem.objective_batch(z)
    lam = np.full(len(z), 1e-2)
    delta = problem.delta
    eye = np.eye(z.shape[1])
    quiet = np.zeros(len(z), dtype=int)
    batched_w = problem.weights is not None and problem.weights.ndim == 2
    for _ in range(iters):
        live = np.isfinite(f)
        if tol is not None:
            live &= (quiet < 5) & (lam < 1e10)
        if not live.any():
            break
        zl = z[live]
        sub = problem.subset(live) if batched_w else problem
        with np.errstate(all="ignore"):
            r, jac = sub.residuals_jac_batch(zl)
            a = np.abs(r)
            w = np.where(a <= delta, 1.0, delta / np.maximum(a, 1e-300))
            if sub.weights is not None:
                w = w * sub.weights
            jw = jac * w[..., None]
            g = np.matmul((w * r)[:, None, :], jac)[:, 0, :]
            h = np.matmul(jw.transpose(0, 2, 1), jac)
            d = np.diagonal(h, axis1=1, axis2=2)
            damp = lam[live][:, None] * (d + 1e-9 * d.max(axis=1, keepdims=True) + 1e-12)
            m = h + damp[:, :, None] * eye
            ok = np.all(np.isfinite(m), axis=(1, 2)) & np.all(np.isfinite(g), axis=1)
            step = np.zeros_like(zl)
            if ok.any():
                try:
                    step[ok] = np.linalg.solve(m[ok], -g[ok][..., None])[..., 0]
                except np.linalg.LinAlgError:
                    step[ok] = -g[ok] / np.maximum(np.diagonal(m[ok], axis1=1, axis2=2), 1e-12)
        znew = np.clip(zl + np.nan_to_num(step), lo, hi)
        fnew = sub.objective_batch(znew)
        better = fnew < f[live]
        idx = np.flatnonzero(live)
        gain = (f[live] - fnew) > (tol or 0.0) * np.abs(f[live])
        quiet[idx] = np.where(better & gain, 0, quiet[idx] + 1)
        z[idx[better]] = znew[better]
        f[idx[better]] = fnew[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3, 1e-12), np.minimum(lam[idx] * 4, 1e12))
    return z, f


def polish(problem: Problem, z0: np.ndarray, lbfgs: bool = True) -> FitResult:
    """Polish one start tightly: Huber least squares, then L-BFGS-B; keep the lower objective."""
    from scipy.optimize import least_squares, minimize  # heavy: only when fitting

    lo, hi = problem.lower, problem.upper
    z0 = np.clip(np.asarray(z0, dtype=float), lo, hi)
    best = FitResult(z0, problem.objective(z0), "start", False, "start", 0)
    try:
        with np.errstate(all="ignore"):
            ls = least_squares(
                problem.residuals, z0, jac=problem.jacobian, bounds=(lo, hi), method="trf",
                loss="huber", f_scale=problem.delta, x_scale="jac", ftol=TIGHT, xtol=TIGHT,
                gtol=TIGHT, max_nfev=1000,
            )
        f = problem.objective(ls.x)
        if f <= best.objective:
            best = FitResult(ls.x.copy(), f, "least_squares(huber)", bool(ls.success),
                             str(ls.message), int(ls.nfev))
    except (ValueError, np.linalg.LinAlgError) as e:  # e.g. a non-finite residual at z0
        best.message = f"least_squares failed: {e}"
    if lbfgs:
        with np.errstate(all="ignore"):
            lb = minimize(
                problem.objective_grad, best.z, jac=True, method="L-BFGS-B",
                bounds=list(zip(lo, hi, strict=True)),
                options={"ftol": TIGHT, "gtol": 1e-13, "maxiter": 1000, "maxfun": 2000,
                         "maxls": 60},
            )
        f = problem.objective(lb.x)
        # never discard a better optimum because `success` is False
        if f < best.objective:
            best = FitResult(lb.x.copy(), f, "L-BFGS-B", bool(lb.success), str(lb.message),
                             int(lb.nfev) + best.nfev)
    return best


def _distinct(z: np.ndarray, order: np.ndarray, k: int, tol: float = 1e-4) -> list[int]:
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= k:
            break
        if all(np.max(np.abs(z[i] - z[j]) / (1 + np.abs(z[j]))) > tol for j in chosen):
            chosen.append(int(i))
    return chosen


def multistart(problem: Problem, starts: np.ndarray, top_k: int = 8, screen_iters: int = 30,
               lbfgs: bool = True) -> MultiResult:
    """Screen ``starts`` (K, q), polish the ``top_k`` best distinct ones, best first."""
    starts = np.atleast_2d(np.asarray(starts, dtype=float))
    if screen_iters > 0:
        z, f = screen(problem, starts, screen_iters)
    else:
        z = np.clip(starts, problem.lower, problem.upper)
        f = problem.objective_batch(z)
    order = np.argsort(np.where(np.isfinite(f), f, np.inf), kind="stable")
    picks = _distinct(z, order, top_k)
    if not picks:
        picks = [int(order[0])]
    results = [polish(problem, z[i], lbfgs=lbfgs) for i in picks]
    results.sort(key=lambda r: r.objective if math.isfinite(r.objective) else math.inf)
    return MultiResult(results, len(starts), screen_iters, f)


def naive_multistart(problem: Problem, starts: np.ndarray, numeric_grad: bool = True,
                     progress=None) -> FitResult:
    """The baseline: L-BFGS-B with SciPy's default settings from every start; keep the best.

    With ``numeric_grad`` the gradient is SciPy's finite-difference default, as in a plain
    ``minimize(huber_loss, x0, method="L-BFGS-B")`` loop. Used by ``benchmarks/``.
    """
    from scipy.optimize import minimize  # heavy: only when fitting

    bounds = list(zip(problem.lower, problem.upper, strict=True))
    best = FitResult(np.asarray(starts[0], dtype=float), math.inf, "naive")
    starts = np.atleast_2d(starts)
    for i, z0 in enumerate(starts):
        if progress:
            progress(i, len(starts))
        z0 = np.clip(z0, problem.lower, problem.upper)
        with np.errstate(all="ignore"):
            if numeric_grad:
                r = minimize(problem.objective, z0, method="L-BFGS-B", bounds=bounds)
            else:
                r = minimize(problem.objective_grad, z0, jac=True, method="L-BFGS-B",
                             bounds=bounds)
        if r.fun < best.objective:
            best = FitResult(r.x.copy(), float(r.fun), "naive L-BFGS-B", bool(r.success),
                             str(r.message), int(r.nfev))
    return best


def refit_replicates(form: Any, x: Any, theta: np.ndarray, free: np.ndarray, counts: np.ndarray,
                     delta: float) -> np.ndarray:
    """Refit K bootstrap replicates at once: rows weighted by ``counts`` (K, n), from ``theta``.

    The vectorised Levenberg–Marquardt of :func:`screen` runs on the ``free`` parameters until
    every replicate's summed Huber loss stalls (relative change < REFIT_TOL); returns θ (K, p).
    """
    theta = np.asarray(theta, dtype=float)
    pr = Problem(form, x, theta, free, delta, weights=np.asarray(counts, dtype=float))
    z0 = np.repeat(theta[free][None], len(counts), axis=0)
    z, _ = screen(pr, z0, iters=REFIT_ITERS, tol=REFIT_TOL)
    return pr.full(z)
