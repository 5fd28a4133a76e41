"""The authors' optimiser, as their notebook runs it (``fit --optimizer notebook``).

Bartoldson et al.'s ``scaling_law_utils.py`` (bbartoldson/Adversarial-Robustness-Limits) fits
each law by ``scipy.optimize.minimize(loss, x0, method="L-BFGS-B")`` from every start of a grid,
with SciPy's defaults — finite-difference gradients, ``ftol`` 2.2e-9 measured against
``max(|f|, 1)``, ``gtol`` 1e-5, no bounds — keeping the first start whose result is strictly
lowest. Its objective is the *mean* Huber loss (δ = 1e-3) of log residuals, which is ~1e-6 on
real data, so L-BFGS-B stops after a few steps: the notebook's constants are where it stopped,
not the objective's minimum (advscale's default optimiser, :mod:`advscale.laws.optimize`,
finds that minimum; docs/fidelity.md lists the objective each reaches).

This module reproduces the procedure so that the notebook's constants come out of the
notebook's data: the same parameterisations (Approach 2: ``ln A, ln B, ln E, α, β`` then
``ε, ζ`` anchored at the base FID; Approach 3: raw ``A, B, E, Q, α, β, κ, ε``), the same grids
in the same order, the same optimiser settings. Torch-free; SciPy is imported when fitting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from advscale.laws.objective import HUBER_DELTA, Design

OPTIMIZERS = ("advscale", "notebook")
"""``advscale``: screened grid + tight polish (the default); ``notebook``: the authors'."""

STAGE1_GRID = ([0, 1, 2, 5, 10], [0, 1, 2, 5, 10], [-1, -0.5, 0, 0.5, 1],
               [0, 0.1, 0.25, 0.5, 1], [0, 0.1, 0.25, 0.5, 1])
"""``grid_search_lbfgs_minimize``: (ln A, ln B, ln E, α, β), in the code's loop order."""
STAGE2_GRID = ([0.01, 0.1, 0.2], [-0.3, -0.15, 0.15, 0.3])
"""``grid_search_lbfgs_minimize_FID_with_base``: (ε, ζ), ε the outer loop."""
APPROACH3_GRID = ([5, 6, 7], [6500.0, 7000.0, 7500.0], [0.6, 0.5], [0.01, 0.5], [0.1, 0.2, 0.3],
                  [0.1, 0.2, 0.3], [0.8, 0.6], [0.01])
"""``Equation_1_5_That_Is_Chinchilla_At_FID0.get_grid_search_values``: raw
(A, B, E, Q, α, β, κ, ε)."""

Loss = Callable[[np.ndarray], float]


def _mean_huber(r: np.ndarray, delta: float) -> float:
    """``np.mean(scipy.special.huber(delta, r))``, the code's objective."""
    a = np.abs(r)
    return float(np.mean(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


def _lse_residual(t: np.ndarray, ln_l: np.ndarray) -> np.ndarray:
    """``logsumexp`` over the terms (axis 0) minus ln L, always in this one order of
    operations (the finite differences of SciPy's defaults see every rounding)."""
    m = t.max(axis=0)
    return np.log(np.exp(t - m).sum(axis=0)) + m - ln_l


def grid_search(loss: Loss, grid: Sequence[Sequence[float]], every: int = 1
                ) -> tuple[np.ndarray, float, int]:
    """L-BFGS-B with SciPy's defaults from every start of the product of ``grid`` (every
    ``every``-th start with a coarse grid); the first strictly lowest result wins, as in the
    code (``if test.fun < best``, best starting at 1e10). Returns x, its objective and the
    number of starts run."""
    from scipy.optimize import minimize  # heavy: only when fitting

    best_x, best_f, n = None, 1e10, 0
    for i, x0 in enumerate(itertools.product(*grid)):
        if i % every:
            continue
        n += 1
        with np.errstate(all="ignore"):
            res = minimize(loss, np.asarray(x0, dtype=float), method="L-BFGS-B")
        if res.fun < best_f:
            best_x, best_f = np.array(res.x, dtype=float), float(res.fun)
    if best_x is None:
        best_x = np.full(len(grid), np.nan)
    return best_x, best_f, n


def stage1(x: Design, delta: float = HUBER_DELTA, every: int = 1
           ) -> tuple[np.ndarray, float, int]:
    """``approach_3``: (ln A, ln B, ln E, α, β) of ``ln(A/N^α + B/D^β + E)`` on ``x``."""
    ln_n, ln_d, ln_l = np.log(x.n), np.log(x.d), np.log(x.y)

    def loss(z: np.ndarray) -> float:
        a, b, e, al, be = z
        with np.errstate(all="ignore"):
            t = np.stack([a - al * ln_n, b - be * ln_d, np.full_like(ln_n, e)])
            return _mean_huber(_lse_residual(t, ln_l), delta)

    return grid_search(loss, STAGE1_GRID, every)


def stage2(x: Design, base: np.ndarray, base_fid: float, delta: float = HUBER_DELTA
           ) -> tuple[np.ndarray, float, int]:
    """``chinchilla_approach_3_FID_with_base``: (ε, ζ) with ln B and ln E shifted by
    ``(ln(1+FID) − ln(1+FID_base))·ζ`` and ``·ε``; ``base`` is stage 1's (ln A, ln B, ln E,
    α, β)."""
    a, b, e, al, be = (float(v) for v in base)
    ln_n, ln_d, ln_l = np.log(x.n), np.log(x.d), np.log(x.y)
    u, u0 = np.log(1 + x.fid), np.log(1 + base_fid)

    def loss(z: np.ndarray) -> float:
        ep, ze = z  # FID_with_base_modifier: param + (ln(1+FID)·p − ln(1+FID_base)·p)
        with np.errstate(all="ignore"):
            t = np.stack([a - al * ln_n, (b + (u * ze - u0 * ze)) - be * ln_d,
                          e + (u * ep - u0 * ep)])
            return _mean_huber(_lse_residual(t, ln_l), delta)

    return grid_search(loss, STAGE2_GRID)


def approach3(x: Design, delta: float = HUBER_DELTA, every: int = 1
              ) -> tuple[np.ndarray, float, int]:
    """``Equation_1_5_That_Is_Chinchilla_At_FID0`` with ``FID_modifies_E``: raw
    (A, B, E, Q, α, β, κ, ε) of ``A/N^α + (B/D + (Q·FID)^(κ/β))^β + E + ε ln(1+FID)``."""
    n, d, fid, ln_l = x.n, x.d, x.fid, np.log(x.y)
    u = np.log(1 + fid)

    def loss(z: np.ndarray) -> float:
        big_a, big_b, big_e, q, al, be, ka, ep = z
        with np.errstate(all="ignore"):
            t = np.stack([be * np.log(big_b / d + (q * fid) ** (ka / be)),
                          np.log(big_e + u * ep), np.log(big_a) - al * np.log(n)])
            return _mean_huber(_lse_residual(t, ln_l), delta)

    return grid_search(loss, APPROACH3_GRID, every)
