"""The report's quality panels: how the quality (FID, or a named proxy) of the synthetic training
data shows in the runs and in the laws fitted across qualities.

* :func:`loss_vs_samples` — the runs' loss against the samples they saw, one colour per quality,
  one marker per model size;
* :func:`law_across_qualities` — a law of (N, D, FID) (Approach 3; Approach 2 fitted across
  qualities) against the runs, one panel per measured quality and one at quality 0, like
  Bartoldson et al.'s Figure 5;
* :func:`optimal_by_quality` — the laws' compute-optimal N* and D* against FLOPs at each
  measured quality and at 0.

Each is drawn only when the runs hold two or more qualities (else :class:`Skipped`, with why),
and names the quality metric (:mod:`advscale.report.metric`) on every axis, legend and caption.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws.law import Law
from advscale.report.figures import LossFn, Result, Skipped, _number, _plt, _save, log_limits
from advscale.report.metric import metric_label, metric_symbol, quality_name
from advscale.report.runs import Run

MARKERS = "osD^vP*Xph<>"
"""Markers for model sizes, smallest first (cycled)."""
LINESTYLES = ("-", "--", ":", "-.")
"""Line styles for laws, in the order given (cycled)."""


@dataclass(frozen=True)
class QPoint:
    """One run's final evaluation: quality, parameters N, samples seen D, target value."""

    quality: float
    n: float
    d: float
    value: float


def run_quality(run: Run) -> float:
    """A run's quality: its FID (or proxy) value; 0 for real data only (``fid`` null)."""
    v = _number(run.fid)
    return float(f"{v:.6g}") if v is not None and v > 0 else 0.0


def qualities(runs: Sequence[Run]) -> list[float]:
    """The distinct qualities of runs that have evaluations, ascending."""
    return sorted({run_quality(r) for r in runs if r.evals})


def quality_gate(runs: Sequence[Run], title: str, metric: str | None) -> Skipped | None:
    """Why a quality figure is left out (fewer than two qualities), or None to draw it."""
    qs = qualities(runs)
    if len(qs) >= 2:
        return None
    if not qs:
        return Skipped(title, "the records hold no train.eval records")
    return Skipped(title, f"every run has the same quality ({quality_name(metric, qs[0])}); "
                   "the quality figures need runs of two or more qualities")


def final_points(runs: Sequence[Run], target: str) -> list[QPoint]:
    """Each run's final evaluation with N, D > 0 and a positive ``target``."""
    out = []
    for r in runs:
        d, v = _number(r.final.get("samples_seen")), _number(r.final.get(target))
        if r.params > 0 and d and d > 0 and v and v > 0:
            out.append(QPoint(run_quality(r), float(r.params), d, v))
    return out


def quality_colors(values: Sequence[float]) -> dict[float, Any]:
    """One colour per quality (plasma: dark is the best data, 0; bright the worst)."""
    cmap = _plt().get_cmap("plasma")
    uniq = sorted(set(values))
    return {v: cmap(0.85 * i / max(1, len(uniq) - 1)) for i, v in enumerate(uniq)}


def size_styles(sizes: Sequence[float]) -> tuple[dict[float, str], dict[float, Any]]:
    """A marker and a colour (viridis) per model size, smallest first."""
    cmap = _plt().get_cmap("viridis")
    uniq = sorted(set(sizes))
    markers = {n: MARKERS[i % len(MARKERS)] for i, n in enumerate(uniq)}
    colors = {n: cmap(0.9 * i / max(1, len(uniq) - 1)) for i, n in enumerate(uniq)}
    return markers, colors


def _values_text(metric: str | None, qs: Sequence[float]) -> str:
    return ", ".join(quality_name(metric, q) for q in qs)


# -- (a) loss against D per quality ----------------------------------------------------------------
def loss_vs_samples(runs: Sequence[Run], path: Path, target: str, metric: str | None,
                    attack: str = "the evaluation attack") -> Result:
    """Final ``target`` against samples seen D (log-log), one colour per quality and one
    marker per model size; lines join the runs of one size and quality."""
    title = "Loss vs samples per quality"
    skip = quality_gate(runs, title, metric)
    if skip is not None:
        return skip
    pts = final_points(runs, target)
    qs = sorted({p.quality for p in pts})
    if len(qs) < 2:
        return Skipped(title, f"fewer than two qualities have runs with {target} and "
                       "samples_seen")
    plt = _plt()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.set_xscale("log")
    ax.set_yscale("log")
    colors = quality_colors(qs)
    markers, _ = size_styles([p.n for p in pts])
    for q in qs:
        for n in markers:
            group = sorted((p for p in pts if p.quality == q and p.n == n), key=lambda p: p.d)
            if group:
                ax.plot([p.d for p in group], [p.value for p in group], "-", lw=0.8,
                        color=colors[q], alpha=0.6)
                ax.scatter([p.d for p in group], [p.value for p in group], s=30, zorder=3,
                           marker=markers[n], color=colors[q], edgecolors="k", linewidths=0.5)
    ax.set_xlim(*log_limits([p.d for p in pts]))
    ax.set_ylim(*log_limits([p.value for p in pts]))
    _plain(ax)
    handles = [Line2D([], [], color=colors[q], lw=2, label=quality_name(metric, q))
               for q in qs]
    handles += [Line2D([], [], ls="", marker=m, color="0.6", mec="k", label=f"N = {int(n):,}")
                for n, m in markers.items()]
    ax.legend(handles=handles, fontsize=7)
    ax.set_xlabel("training samples seen D")
    ax.set_ylabel(f"{target} under {attack}")
    ax.set_title(f"{target} vs D per quality ({metric_symbol(metric)})")
    caption = (f"Final {target} of {len(pts)} runs against the samples they saw, log-log, one "
               f"colour per quality of their synthetic data, measured as {metric_label(metric)}"
               f" ({_values_text(metric, qs)}), and one marker per model size ({len(markers)}); "
               "lines join the runs of one model size and quality.")
    return _save(fig, path, title, caption)


def _plain(ax) -> None:
    """Plain decimal ticks on a log y axis (evenly spaced when it spans less than a decade,
    as losses do)."""
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator, NullFormatter

    lo, hi = ax.get_ylim()
    if hi < 10 * lo:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))


# -- (b) a law across qualities (Figure 5) ---------------------------------------------------------
def law_across_qualities(runs: Sequence[Run], path: Path, loss_fn: LossFn, target: str,
                         metric: str | None, law_name: str, fit_note: str = "") -> Result:
    """The law's ``target`` against D per model size, one panel per measured quality and one
    at quality 0, over the runs' final evaluations (cf. Bartoldson et al., Figure 5)."""
    title = f"{law_name} across qualities"
    skip = quality_gate(runs, title, metric)
    if skip is not None:
        return skip
    pts = final_points(runs, target)
    if not pts:
        return Skipped(title, f"no run's final evaluation carries params, samples_seen and "
                       f"{target}")
    measured = sorted({p.quality for p in pts})
    panels = measured if 0.0 in measured else [*measured, 0.0]
    plt = _plt()
    ncols = min(len(panels), 4)
    nrows = math.ceil(len(panels) / ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(3.7 * ncols, 3.4 * nrows), squeeze=False)
    flat = list(axs.ravel())
    for ax in flat[len(panels):]:
        fig.delaxes(ax)
    styles = size_styles([p.n for p in pts])
    xlim = log_limits([p.d for p in pts])
    seen = [p.value for p in pts]
    lo, hi = min(seen) / 3, max(seen) * 3  # curves widen the y axis by at most 3x
    ylim = log_limits(seen + [v for v in _curve_values(pts, panels, loss_fn) if lo <= v <= hi])
    for i, (ax, q) in enumerate(zip(flat, panels, strict=False)):
        _law_panel(ax, q, q in measured, pts, styles, loss_fn, xlim, ylim)
        ax.set_title(quality_name(metric, q, "real data" if q in measured else "extrapolated"),
                     fontsize=9)
        ax.set_xlabel("training samples seen D")
        ax.set_ylabel(target)
        if i == 0:
            ax.legend(fontsize=6)
    fig.suptitle(f"{title}: {metric_label(metric)}", fontsize=10)
    zero = ("" if 0.0 in measured else
            "; the last panel, at 0, is the law's extrapolation to data of the true "
            "distribution (dashed)")
    caption = (f"The {law_name} law fitted across qualities, measured as "
               f"{metric_label(metric)}: {target} against samples seen D at each measured quality"
               f" ({_values_text(metric, measured)}) and at 0; lines: the law at each of the "
               f"runs' {len(styles[0])} model sizes, "
               f"points: the {len(pts)} runs' final evaluations (cf. Bartoldson et al., "
               f"Figure 5){zero}{fit_note}.")
    return _save(fig, path, title, caption)


def _curve_values(pts: Sequence[QPoint], panels: Sequence[float], loss_fn: LossFn
                  ) -> list[float]:
    """The law at the runs' model sizes over their D range, at every panel's quality (so the
    shared y axis shows the curves where there are no points, e.g. at quality 0)."""
    d = np.geomspace(min(p.d for p in pts), max(p.d for p in pts), 20)
    out: list[float] = []
    for n in {p.n for p in pts}:
        for q in panels:
            with np.errstate(all="ignore"):
                y = np.asarray(loss_fn(np.full(d.size, n), d, np.full(d.size, q)), float)
            out += [float(v) for v in y if np.isfinite(v) and v > 0]
    return out


def _few_minor_labels(axis: Any) -> None:
    """Label only the 2× and 5× minor ticks of a log axis (the others crowd a narrow panel)."""
    from matplotlib.ticker import FuncFormatter

    def label(x: float, _pos: int) -> str:
        if x <= 0:
            return ""
        e = math.floor(math.log10(x) + 1e-9)
        m = round(x / 10**e)
        return f"${m}\\times10^{{{e}}}$" if m in (2, 5) else ""

    axis.set_minor_formatter(FuncFormatter(label))


def _law_panel(ax, q: float, measured: bool, pts: Sequence[QPoint], styles, loss_fn: LossFn,
               xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    """One quality's panel: the law per model size over D, and that quality's points."""
    markers, colors = styles
    ax.set_xscale("log")
    ax.set_yscale("log")
    _few_minor_labels(ax.xaxis)  # narrow panels: 2×10³ 3×10³ 4×10³ would run together
    grid = np.geomspace(*xlim, 80)
    for n, marker in markers.items():
        with np.errstate(all="ignore"):
            y = loss_fn(np.full(grid.size, n), grid, np.full(grid.size, q))
        ok = np.isfinite(y) & (y > 0)
        ax.plot(grid[ok], y[ok], "-" if measured else "--", lw=1.2, color=colors[n],
                label=f"law, N = {int(n):,}")
        group = [p for p in pts if p.quality == q and p.n == n]
        if group:
            ax.scatter([p.d for p in group], [p.value for p in group], s=26, zorder=3,
                       marker=marker, color=colors[n], edgecolors="k", linewidths=0.5)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    _plain(ax)


# -- (c) N*, D* per quality ------------------------------------------------------------------------
def optimal_by_quality(runs: Sequence[Run], path: Path, laws: Sequence[tuple[str, Law]],
                       metric: str | None, budgets: Sequence[float] = ()) -> Result:
    """N* and D* against the FLOPs budget (log-log) at each measured quality and at 0, one
    colour per quality and one line style per law."""
    title = "N*, D* vs compute per quality"
    skip = quality_gate(runs, title, metric)
    if skip is not None:
        return skip
    span = [f for r in runs for p in r.points
            if (f := _number(p.get("train_flops"))) and f > 0] + list(budgets)
    if not span or not laws:
        return Skipped(title, "no train_flops in the records and no budgets asked for"
                       if laws else "no law of N, D and FID was given")
    measured = qualities(runs)
    qs = sorted(set(measured) | {0.0})
    grid = np.geomspace(min(span) / 10, max(span) * 10, 30)
    series = [(name, q, optimal_series(law, grid, q)) for name, law in laws for q in qs]
    if not any(np.isfinite(s[2][0]).any() for s in series):
        return Skipped(title, "the laws give no finite optimum over these budgets")
    plt = _plt()
    from matplotlib.lines import Line2D

    fig, axs = plt.subplots(1, 2, figsize=(10.4, 4.2))
    colors = quality_colors(qs)
    styles = {name: LINESTYLES[i % len(LINESTYLES)] for i, (name, _) in enumerate(laws)}
    for ax, key, label in ((axs[0], 0, "N* (parameters)"), (axs[1], 1, "D* (samples)")):
        _optimal_panel(ax, grid, series, key, colors, styles)
        ax.set_xlabel("training compute (FLOPs)")
        ax.set_ylabel(label)
        ax.axvspan(min(span), max(span), color="k", alpha=0.06)
    handles = [Line2D([], [], color=colors[q], lw=2,
                      label=quality_name(metric, q, "real data" if q in measured
                                         else "extrapolated")) for q in qs]
    handles += [Line2D([], [], color="k", ls=ls, label=name) for name, ls in styles.items()]
    axs[0].legend(handles=handles, fontsize=7)
    axs[0].set_title(f"N* per quality ({metric_symbol(metric)})")
    axs[1].set_title(f"D* per quality ({metric_symbol(metric)})")
    caption = (f"Compute-optimal model size N* and samples D* of the "
               f"{' and '.join(styles)} law{'s' if len(styles) > 1 else ''} against the FLOPs "
               f"budget, log-log, at each measured quality, measured as "
               f"{metric_label(metric)} ({_values_text(metric, measured)}), and at 0; shaded: "
               "the runs' FLOPs.")
    return _save(fig, path, title, caption)


def optimal_series(law: Law, grid: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """N*(F) and D*(F) of ``law`` at quality ``q`` over the budgets ``grid`` (NaN where the
    optimum is not found)."""
    n_star, d_star = [], []
    for b in grid:
        try:
            n, d, _ = law.optimal(float(b), q)
        except (AdvscaleError, ArithmeticError, ValueError):
            n = d = float("nan")
        n_star.append(n)
        d_star.append(d)
    return np.asarray(n_star, float), np.asarray(d_star, float)


def _optimal_panel(ax, grid: np.ndarray, series, key: int, colors, styles) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ys = []
    for name, q, rows in series:
        y = rows[key]
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            ax.plot(grid[ok], y[ok], styles[name], lw=1.5, color=colors[q])
            ys += list(y[ok])
    ax.set_xlim(*log_limits(grid))
    ax.set_ylim(*log_limits(ys))
