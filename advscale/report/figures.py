"""The report's figures, each a function from runs (and laws) to a saved PNG.

All axes carry units; FLOPs are plain FLOPs on log axes. matplotlib runs on the Agg backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.laws.approach1 import Curve, envelope
from advscale.report.runs import Run

LossFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""A law's loss prediction ``L(N, D, FID)`` on arrays."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 10, "axes.grid": True,
                         "grid.alpha": 0.3})
    return plt


def _colors(values: Sequence[float]) -> dict[float, Any]:
    plt = _plt()
    uniq = sorted(set(values))
    cmap = plt.get_cmap("viridis")
    return {v: cmap(i / max(1, len(uniq) - 1)) for i, v in enumerate(uniq)}


def _plain_y(ax) -> None:
    """Plain decimal tick labels on a log y axis (losses span less than a decade)."""
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    _plt().close(fig)
    return path


def learning_curves(runs: Sequence[Run], path: Path, target: str = "adv_loss") -> Path:
    """Loss vs training FLOPs per run (log-log), coloured by model size, with the envelope."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colors = _colors([r.params for r in runs])
    labelled: set[int] = set()
    curves = []
    for i, r in enumerate(runs):
        pts = [(p.get("train_flops"), p.get("samples_seen"), p.get(target)) for p in r.points]
        pts = [(f, d, v) for f, d, v in pts if f and d and v is not None and f > 0 and v > 0]
        if not pts:
            continue
        f, d, v = map(np.asarray, zip(*pts, strict=True))
        label = None if r.params in labelled else f"{r.model} (N={r.params:,})"
        labelled.add(r.params)
        ax.plot(f, v, "-o", ms=3, lw=1, color=colors[r.params], label=label, alpha=0.85)
        curves.append(Curve(i, float(r.params), f.astype(float), d.astype(float),
                            v.astype(float)))
    if any(c.flops.size >= 2 for c in curves):
        env = envelope(curves)
        ax.plot(env.flops, env.value, "k--", lw=1.5, label="envelope (Approach 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_y(ax)
    ax.set_xlabel("training compute (FLOPs)")
    attack = next((p.get("eval_attack") for r in runs for p in r.points if p.get("eval_attack")),
                  "PGD-CW")
    ax.set_ylabel(f"{target} (TRADES β=5 loss under {attack})" if target == "adv_loss"
                  else target)
    ax.set_title("Learning curves")
    ax.legend(fontsize=8)
    return _save(fig, path)


def accuracy_vs_flops(
    runs: Sequence[Run],
    path: Path,
    power_law: dict[str, Any] | None = None,
) -> Path:
    """Final robust accuracy (AutoAttack where present, else PGD-40-CW) vs training FLOPs."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for attack, marker, label in (("aa-standard", "s", "AutoAttack"),
                                  (None, "o", "PGD-40-CW (eval subset)")):
        xs, ys = [], []
        for r in runs:
            f = r.final.get("train_flops")
            acc = r.attack_acc(attack) if attack else r.final.get("robust_acc")
            if f and acc is not None:
                xs.append(f)
                ys.append(acc)
        if xs:
            ax.scatter(xs, np.asarray(ys) * 100, marker=marker, label=label, alpha=0.8)
    if power_law and power_law.get("params"):
        p = power_law["params"]
        c, alpha = p.get("C", p.get("c")), p.get("alpha")
        if c is not None and alpha is not None:
            lo, hi = ax.get_xlim()
            x = np.logspace(np.log10(max(lo, 1)), np.log10(hi), 100)
            ax.plot(x, c * x**alpha * 100, "k--",
                    label=f"power law {c:.3g}·FLOPs^{alpha:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title("Robust accuracy vs compute")
    ax.legend(fontsize=8)
    return _save(fig, path)


def law_fit(
    runs: Sequence[Run],
    path: Path,
    loss_fn: LossFn,
    fid: float = 0.0,
    flops_per_param_sample: float = PAPER_FLOPS_PER_PARAM_SAMPLE,
    target: str = "adv_loss",
) -> Path:
    """Isoloss contours of a law over (N, D) with the observed points and the N*(F) curve."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ns = [p.get("params") for r in runs for p in r.points]
    ds = [p.get("samples_seen") for r in runs for p in r.points]
    ls = [p.get(target) for r in runs for p in r.points]
    obs = [(n, d, v) for n, d, v in zip(ns, ds, ls, strict=True) if n and d and v]
    n_lo, n_hi = (min(o[0] for o in obs) / 3, max(o[0] for o in obs) * 30) if obs else (1e4, 1e9)
    d_lo, d_hi = (min(o[1] for o in obs) / 3, max(o[1] for o in obs) * 30) if obs else (1e3, 1e9)
    n_grid = np.logspace(np.log10(n_lo), np.log10(n_hi), 120)
    d_grid = np.logspace(np.log10(d_lo), np.log10(d_hi), 120)
    nn, dd = np.meshgrid(n_grid, d_grid)
    zz = loss_fn(nn.ravel(), dd.ravel(), np.full(nn.size, fid)).reshape(nn.shape)
    # contour levels over the values that matter: from what the law reaches on the grid up to
    # the worst observation (a law that explodes at small D would otherwise take every level)
    levels = _contour_levels(zz, [o[2] for o in obs])
    norm = plt.Normalize(levels[0], levels[-1])
    cs = ax.contour(dd, nn, zz, levels=levels, cmap="viridis", norm=norm, linewidths=0.8)
    ax.clabel(cs, fontsize=7, fmt="%.3g")
    # N*(F): along each FLOPs level the N minimising the law under F = C·N·D
    f_lo, f_hi = flops_per_param_sample * n_lo * d_lo, flops_per_param_sample * n_hi * d_hi
    budgets = np.logspace(np.log10(f_lo), np.log10(f_hi), 60)
    n_star, d_star = [], []
    cand = np.logspace(np.log10(n_lo) - 1, np.log10(n_hi) + 1, 400)
    for b in budgets:
        d_c = b / (flops_per_param_sample * cand)
        v = loss_fn(cand, d_c, np.full(cand.size, fid))
        i = int(np.nanargmin(v))
        n_star.append(cand[i])
        d_star.append(d_c[i])
    ax.plot(d_star, n_star, "r-", lw=2, label="compute-optimal N*(F)")
    if obs:
        sc = ax.scatter([o[1] for o in obs], [o[0] for o in obs], c=[o[2] for o in obs],
                        cmap="viridis", norm=norm, edgecolors="k", s=28, zorder=3,
                        label="observed")
        fig.colorbar(sc, ax=ax, label=f"observed {target}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(d_lo, d_hi)
    ax.set_ylim(n_lo, n_hi)
    ax.set_xlabel("training samples seen D")
    ax.set_ylabel("parameters N")
    ax.set_title(f"Fitted law: isoloss contours (FID {fid:g})")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _contour_levels(zz: np.ndarray, observed: Sequence[float], count: int = 12) -> np.ndarray:
    """``count`` levels from the law's low end on the grid to just above the worst observation."""
    vals = zz[np.isfinite(zz)]
    if vals.size == 0:
        return np.linspace(0.0, 1.0, count)
    top = max(observed) * 1.02 if observed else float(np.quantile(vals, 0.9))
    bottom = min(float(np.quantile(vals, 0.02)), min(observed) if observed else top)
    if not bottom < top:
        bottom = top - max(abs(top) * 0.1, 1e-9)
    return np.linspace(bottom, top, count)


def predicted_vs_actual(
    points: Sequence[tuple[float, float, bool]], path: Path, target: str = "adv_loss"
) -> Path:
    """Scatter of (actual, predicted) losses; held-out points marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    a = np.asarray([p[0] for p in points])
    b = np.asarray([p[1] for p in points])
    held = np.asarray([p[2] for p in points], dtype=bool)
    ax.scatter(a[~held], b[~held], s=20, label="fitted")
    if held.any():
        ax.scatter(a[held], b[held], s=60, marker="*", color="crimson", label="held out")
    if len(a):
        lo, hi = min(a.min(), b.min()) * 0.95, max(a.max(), b.max()) * 1.05
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_xlabel(f"actual {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.set_title("Predicted vs actual")
    ax.legend(fontsize=8)
    return _save(fig, path)


def energy_vs_flops(runs: Sequence[Run], path: Path) -> Path | None:
    """Facility energy (kWh) and CO2 (kg) per run vs training FLOPs, when energy records exist."""
    pts = [(r.final.get("train_flops"), e) for r in runs for e in r.energy[-1:]]
    pts = [(f, e) for f, e in pts if f]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    f = np.asarray([p[0] for p in pts])
    kwh = np.asarray([p[1].get("facility_energy_kwh") or p[1].get("it_energy_kwh") or np.nan
                      for p in pts])
    ax.scatter(f, kwh, label="electricity (kWh, PUE-adjusted)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("energy (kWh)")
    ax.set_title("Energy vs compute")
    ax.legend(fontsize=8)
    return _save(fig, path)
