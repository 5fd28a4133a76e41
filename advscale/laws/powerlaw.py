"""Debenedetti et al. (2024): power laws of the best accuracy (and its cost) against FLOPs.

The FLOPs range of the runs is split into 19 log-spaced bins; in each non-empty bin the run
with the best accuracy (lowest value for a loss) is kept — the best-performance envelope — and

    accuracy = C · FLOPs^α

is fitted by least squares in log-log space, with the R² of that regression. The same best runs
give power laws of other fields against FLOPs (electricity cost, energy, CO2: ``--also``).
FLOPs are plain FLOPs here; see :mod:`advscale.laws.presets` for the paper's own constants.
"""

from __future__ import annotations

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws.approach1 import loglog_fit

N_BINS = 19


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


def predict(params: dict[str, float], flops) -> np.ndarray:
    """``C · FLOPs^α`` at ``flops`` (plain FLOPs)."""
    return params["C"] * np.asarray(flops, dtype=float) ** params["alpha"]
