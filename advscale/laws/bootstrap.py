"""Bootstrap over whole runs: parameter intervals and out-of-sample error.

Points of one run (a training curve, or several attacks of one checkpoint) are not independent,
so a bootstrap replicate draws *runs* with replacement and keeps all of each drawn run's
points. Each replicate is refitted (warm-started from the full-data optimum, polished with the
same tight tolerances), giving percentile intervals for every parameter and derived quantity.
Runs a replicate did not draw (about 37%) are out of bag: the replicate's law predicts them,
giving out-of-sample R² and RMSE (the median over replicates is reported).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass
class BootstrapResult:
    """Replicate parameter vectors (B, p; NaN rows for failed fits) and OOB statistics."""

    samples: np.ndarray
    oob_r2: np.ndarray
    oob_rmse: np.ndarray
    oob_rmse_log: np.ndarray
    seed: int

    @property
    def ok(self) -> int:
        return int(np.all(np.isfinite(self.samples), axis=1).sum())


def draw_counts(run: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """How often each row is drawn in each replicate (B, n): runs drawn with replacement.

    Every row of a run gets its run's count, so a replicate is a set of whole runs.
    Deterministic for a ``seed``.
    """
    runs, inverse = np.unique(run, return_inverse=True)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, runs.size, size=(n_boot, runs.size))
    per_run = np.zeros((n_boot, runs.size), dtype=np.int64)
    np.add.at(per_run, (np.arange(n_boot)[:, None], drawn), 1)
    return per_run[:, inverse]


def regression_stats(y: np.ndarray, yhat: np.ndarray) -> dict[str, float]:
    """R² and RMSE of ``yhat`` against ``y`` (linear), and RMSE of their logs."""
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    ss = float(np.sum((y - y.mean()) ** 2))
    res = float(np.sum((y - yhat) ** 2))
    with np.errstate(all="ignore"):
        rl = np.sqrt(np.mean((np.log(yhat) - np.log(y)) ** 2))
    return {"r2": 1 - res / ss if ss > 0 else float("nan"),
            "rmse": float(np.sqrt(res / y.size)), "rmse_log": float(rl)}


def run_bootstrap(
    run: np.ndarray,
    y: np.ndarray,
    refit: Callable[[np.ndarray], np.ndarray | None] | None,
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    n_boot: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    refit_batch: Callable[[np.ndarray], np.ndarray] | None = None,
    chunk: int = 250,
) -> BootstrapResult:
    """``n_boot`` run-level replicates.

    Either ``refit(rows)`` fits one replicate's rows (repeats included) and returns a parameter
    vector or None, or ``refit_batch(counts)`` fits many at once from their (K, n) row counts
    and returns (K, p) (NaN rows for failures). ``predict(theta, rows)`` predicts ``y[rows]``
    for the out-of-bag statistics.
    """
    counts = draw_counts(run, n_boot, seed)
    thetas: list[np.ndarray | None] = []
    if refit_batch is not None:
        for lo in range(0, n_boot, chunk):
            block = refit_batch(counts[lo:lo + chunk])
            thetas.extend(np.asarray(row, dtype=float) for row in block)
            if progress:
                progress(min(lo + chunk, n_boot), n_boot)
    else:
        assert refit is not None
        for b in range(n_boot):
            rows = np.repeat(np.arange(counts.shape[1]), counts[b])
            thetas.append(refit(rows))
            if progress:
                progress(b + 1, n_boot)
    samples, r2s, rmses, rls = [], [], [], []
    for b, theta in enumerate(thetas):
        if theta is None or not np.all(np.isfinite(theta)):
            samples.append(None)
            continue
        samples.append(np.asarray(theta, dtype=float))
        oob = np.flatnonzero(counts[b] == 0)
        if oob.size >= 2:
            st = regression_stats(y[oob], predict(theta, oob))
            r2s.append(st["r2"])
            rmses.append(st["rmse"])
            rls.append(st["rmse_log"])
    p = next((s.size for s in samples if s is not None), 0)
    mat = np.array([s if s is not None else np.full(p, np.nan) for s in samples])
    return BootstrapResult(mat.reshape(len(samples), p), np.array(r2s), np.array(rmses),
                           np.array(rls), seed)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The central ``level`` percentile interval of the finite values, or None."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return None
    lo, hi = np.percentile(v, [50 * (1 - level), 100 - 50 * (1 - level)])
    return [float(lo), float(hi)]
