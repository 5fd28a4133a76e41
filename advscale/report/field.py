"""The field on the law in the report: published (or one's own) runs placed on a law of N, D
and FID (Bartoldson et al. 2024, Figures 6 and 7), with :mod:`advscale.laws.published`.

Two figures: each run at its (D, N) on the law's isoloss contours with the compute-optimal
N*(FLOPs) path (Figure 6's "compute-efficient" view), and Eq. 6's compute overhead against
model size at one run's budget (Figure 7; the prior SOTA's when it is among the runs), in
percent of the optimal FLOPs. FLOPs are plain FLOPs (k·N·D with the law's k).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws.law import Law
from advscale.laws.published import overhead_curve, place
from advscale.report.figures import Drawn, Result, Skipped, _plt, _save, log_limits

PRIOR_SOTA = "wang2023-wrn-70-16"
"""The run whose budget Figure 7 is drawn at when it is among the runs (the paper's choice)."""


def placing_law(laws: Sequence[dict[str, Any]]) -> Law | None:
    """The first law that has a compute-optimal N*, D* and Eq. 6 (Approach 2 or 3)."""
    for doc in laws:
        try:
            law = Law(doc)
        except AdvscaleError:
            continue
        if all(law.supports(op) for op in ("predict", "optimal", "tradeoff")):
            return law
    return None


def field_figures(laws: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]], out: Path
                  ) -> tuple[list[Result], list[dict[str, Any]]]:
    """Figures 6 and 7 for ``runs`` (table entries) on the first placing law, and each run's
    placement (:func:`advscale.laws.published.place`)."""
    if not runs:
        return [], []
    law = placing_law(laws)
    if law is None:
        return [Skipped("Published runs on the law", "no Approach 2 or 3 law was given")], []
    placed = [place(law, r) for r in runs]
    ok = [p for p in placed if p["placed"]]
    if not ok:
        return [Skipped("Published runs on the law", "no run states both N and D")], placed
    return [runs_vs_optimal(law, ok, out / "published_runs.png"),
            overhead_figure(law, ok, out / "compute_overhead.png")], placed


def runs_vs_optimal(law: Law, placed: Sequence[dict[str, Any]], path: Path) -> Drawn:
    """Each run at (D, N) on the law's isoloss contours with its N*(FLOPs) path (Figure 6's
    view), at the first run's FID."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.set_xscale("log")
    ax.set_yscale("log")
    fid = placed[0]["fid"]
    ns = [p["params"] for p in placed] + [p["n_opt"] for p in placed]
    ds = [p["samples_seen"] for p in placed] + [p["d_opt"] for p in placed]
    n_lo, n_hi = log_limits(ns, pad=0.5)
    d_lo, d_hi = log_limits(ds, pad=0.5)
    nn, dd = np.meshgrid(np.geomspace(n_lo, n_hi, 100), np.geomspace(d_lo, d_hi, 100))
    zz = np.asarray(law.value(nn.ravel(), dd.ravel(), np.full(nn.size, fid)),
                    dtype=float).reshape(nn.shape)
    cs = ax.contour(dd, nn, zz, levels=10, cmap="viridis", linewidths=0.8)
    ax.clabel(cs, fontsize=7, fmt="%.3g")
    grid = np.geomspace(law.k * n_lo * d_lo, law.k * n_hi * d_hi, 80)
    opt = np.array([law.optimal(float(f), fid)[:2] for f in grid])
    ax.plot(opt[:, 1], opt[:, 0], "r-", lw=2, label=f"compute-optimal N*(F), FID {fid:g}")
    for p in placed:
        ax.scatter([p["samples_seen"]], [p["params"]], s=40, zorder=3, edgecolors="k")
        ax.annotate(p["run"], (p["samples_seen"], p["params"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.set_xlim(d_lo, d_hi)
    ax.set_ylim(n_lo, n_hi)
    ax.set_xlabel("training samples seen D")
    ax.set_ylabel("parameters N")
    ax.set_title(f"Published runs on the law (iso-{law.quantity}, FID {fid:g})", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    worst = max(placed, key=lambda p: p["compute_overhead"] or 0.0)
    caption = (f"Each run at its samples and size on the {law.name} law's iso-{law.quantity} "
               f"contours at FID {fid:g}, with the compute-optimal N*(F) path (cf. Bartoldson "
               "et al., Figure 6). "
               + "; ".join(f"{p['run']}: N/N* {p['omega_n']:.2f}, overhead "
                           + (f"{100 * p['compute_overhead']:.1f}%"
                              if p["compute_overhead"] is not None else "unreachable")
                           for p in placed)
               + f". Largest overhead: {worst['run']}.")
    return _save(fig, path, "Published runs on the law", caption)


def overhead_figure(law: Law, placed: Sequence[dict[str, Any]], path: Path) -> Drawn:
    """Figure 7: Eq. 6's overhead (percent) against N at one run's budget and FID."""
    ref = next((p for p in placed if p["run"] == PRIOR_SOTA), placed[0])
    budget, fid = ref["train_flops"], ref["fid"]
    sizes, over, n_opt = overhead_curve(law, budget, fid)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    ax.set_xscale("log")
    ax.plot(sizes, 100 * over, lw=1.8, label=f"Eq. 6 at {budget:.3g} FLOPs, FID {fid:g}")
    ax.axvline(n_opt, color="gray", ls="--", lw=1, label=f"N* = {n_opt:.3g}")
    same = [p for p in placed if abs(np.log(p["train_flops"] / budget)) < 0.05
            and p["compute_overhead"] is not None]
    for p in same:
        ax.scatter([p["params"]], [100 * p["compute_overhead"]], s=40, zorder=3)
        ax.annotate(p["run"], (p["params"], 100 * p["compute_overhead"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.set_xlim(*log_limits(list(sizes)))
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    finite = over[np.isfinite(over)]
    ax.set_ylim(min(-1.0, 100 * float(finite.min()) - 1), 100 * float(finite.max()) * 1.05 + 1)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("compute overhead (% of optimal FLOPs)")
    ax.set_title("Compute overhead vs model size")
    ax.legend(fontsize=8)
    caption = (f"The extra training FLOPs (percent of the compute-optimal run's) a model of "
               f"size N needs to reach L* at the budget of {ref['run']} ({budget:.3g} FLOPs), "
               f"Eq. 6 of Bartoldson et al. with the {law.name} law (cf. their Figure 7); "
               f"{ref['run']} sits at N/N* {ref['omega_n']:.2f}.")
    return _save(fig, path, "Compute overhead vs model size", caption)
