"""The report's figures: each a function from runs (and laws) to a :class:`Drawn` or a
:class:`Skipped` (no data: the page lists it instead of drawing an empty figure).

Axes come from the data: log scales are set before any limit is read, and limits span the
plotted points (a fitted line never sets them). Each :class:`Drawn` carries what its axes show
(labels, scales, limits, legend entries), read off the matplotlib objects before saving, and a
caption built from the records and laws. FLOPs are plain FLOPs. matplotlib runs on Agg.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advscale.laws.approach1 import Curve, envelope
from advscale.report.runs import Run

LossFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""A law's loss prediction ``L(N, D, FID)`` on arrays."""


@dataclass
class Drawn:
    """A saved figure: its title, PNG, caption and what each of its axes shows."""

    title: str
    path: Path
    caption: str
    axes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Skipped:
    """A figure left out, and why (listed on the page)."""

    title: str
    reason: str


Result = Drawn | Skipped


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


def axes_info(ax) -> dict[str, Any]:
    """What an axes shows: labels, scales, limits, legend entries, points per labelled
    scatter and samples per labelled line (for tests and the page)."""
    legend = ax.get_legend()
    return {"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "xscale": ax.get_xscale(), "yscale": ax.get_yscale(),
            "xlim": tuple(float(v) for v in ax.get_xlim()),
            "ylim": tuple(float(v) for v in ax.get_ylim()),
            "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
            "points": {str(c.get_label()): len(c.get_offsets()) for c in ax.collections
                       if not str(c.get_label()).startswith("_")},
            "lines": {str(ln.get_label()): len(ln.get_xdata()) for ln in ax.lines
                      if not str(ln.get_label()).startswith("_")}}


def _save(fig, path: Path, title: str, caption: str) -> Drawn:
    fig.tight_layout()
    axes = [axes_info(ax) for ax in fig.axes if ax.get_label() != "<colorbar>"]
    fig.savefig(path)
    _plt().close(fig)
    return Drawn(title, path, caption, axes)


def log_limits(values: Sequence[float], pad: float = 0.08) -> tuple[float, float]:
    """Limits of a log axis around positive ``values`` (a fraction ``pad`` of a decade span)."""
    v = np.asarray([x for x in values if x is not None and x > 0 and math.isfinite(x)], float)
    lo, hi = float(v.min()), float(v.max())
    span = max(math.log10(hi / lo), 0.2)
    return lo / 10 ** (pad * span), hi * 10 ** (pad * span)


def _number(v: Any) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


# -- learning curves ------------------------------------------------------------------------------
def learning_curves(runs: Sequence[Run], path: Path, target: str = "adv_loss") -> Result:
    """Loss vs training FLOPs per run (log-log), coloured by model size, with the envelope."""
    title = "Learning curves"
    series = []
    for r in runs:
        pts = [(_number(p.get("train_flops")), _number(p.get("samples_seen")),
                _number(p.get(target))) for p in r.points]
        pts = [(f, d, v) for f, d, v in pts if f and d and v and f > 0 and v > 0]
        if pts:
            series.append((r, pts))
    if not any(len(p) >= 2 for _, p in series):
        return Skipped(title, f"no run has two or more evaluations with {target} and "
                       "train_flops (the records hold final results only)")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.set_xscale("log")
    ax.set_yscale("log")
    colors = _colors([r.params for r, _ in series])
    labelled: set[int] = set()
    curves, base = [], []
    mixed = len({r.fid or 0.0 for r, _ in series}) > 1
    for i, (r, pts) in enumerate(series):
        f, d, v = (np.asarray(x, float) for x in zip(*pts, strict=True))
        real = not r.fid
        label = (None if r.params in labelled or not (real or not mixed)
                 else f"{r.model} (N={r.params:,})")
        if label:
            labelled.add(r.params)
        ax.plot(f, v, "-o" if real else ":o", ms=3, lw=1, color=colors[r.params], label=label,
                alpha=0.85 if real else 0.45)
        curves.append(Curve(i, float(r.params), f, d, v))
        if real or not mixed:
            base.append(curves[-1])
    if any(c.flops.size >= 2 for c in base):
        env = envelope(base)
        ax.plot(env.flops, env.value, "k--", lw=1.5,
                label="envelope (Approach 1" + (", real data)" if mixed else ")"))
    if mixed:
        ax.plot([], [], ":o", ms=3, lw=1, color="grey", alpha=0.45, label="synthetic data")
    ax.set_xlim(*log_limits([x for c in curves for x in c.flops]))
    ax.set_ylim(*log_limits([x for c in curves for x in c.value]))
    _plain_y(ax)
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel(f"{target} under {_eval_attack(runs)}")
    ax.set_title(title)
    ax.legend(fontsize=8)
    caption = (f"{target} ({loss_words(runs)}) under the evaluation attack "
               f"{_eval_attack(runs)} against the training FLOPs spent so far, log-log, one "
               f"line per run ({len(series)} runs), with the lower envelope (Approach 1)"
               + ("; runs on synthetic data dotted and faded, the envelope over the real-data "
                  "runs only (Approach 1 fits one dataset at a time)." if mixed else "."))
    return _save(fig, path, title, caption)


def _eval_attack(runs: Sequence[Run]) -> str:
    names = sorted({str(p["eval_attack"]) for r in runs for p in r.points
                    if p.get("eval_attack")})
    return ", ".join(names) if names else "the evaluation attack"


def loss_words(runs: Sequence[Run]) -> str:
    """The training losses of the runs, as the records name them (``trades β=5, pgd-at``)."""
    seen = []
    for r in runs:
        p = r.final
        loss = p.get("loss")
        if loss is None:
            continue
        text = f"{loss} β={p.get('beta'):g}" if loss == "trades" and _number(
            p.get("beta")) is not None else str(loss)
        if text not in seen:
            seen.append(text)
    return ", ".join(seen) if seen else "loss not recorded"


# -- Debenedetti et al.'s figure: best accuracy per FLOPs bin -------------------------------------
@dataclass
class AccuracyPoint:
    run_id: str
    flops: float
    acc: float
    kept: bool


def paper_formula(law: dict[str, Any], percent: bool = True, digits: int = 4) -> str:
    """A power law ``C·FLOPs^α`` in Debenedetti et al.'s units (x in TFLOPs; an accuracy in
    percent): the one spelling a figure's legend and caption share."""
    c, alpha = float(law["C"]), float(law["alpha"])
    scaled = (100.0 if percent else 1.0) * c * 1e12 ** alpha
    return f"{scaled:.{digits}g}·TFLOPs^{alpha:.3g}" + (" (%)" if percent else "")


# -- fitted loss laws ---------------------------------------------------------------------------
def law_fit(runs: Sequence[Run], path: Path, loss_fn: LossFn, fid: float,
            flops_per_param_sample: float, target: str, law_name: str,
            at: str | None = None) -> Result:
    """Isoloss contours of a law over (N, D) with the observed points and the N*(F) curve.

    ``at`` names the quality drawn (``fd_pca64_n2000 = 1.38``; default ``FID = {fid}``).
    """
    title = "Fitted law"
    at = at or f"FID = {fid:g}"
    obs = [(_number(p.get("params")), _number(p.get("samples_seen")), _number(p.get(target)))
           for r in runs for p in r.points]
    obs = [o for o in obs if o[0] and o[1] and o[2]]
    if not obs:
        return Skipped(title, f"no evaluation carries params, samples_seen and {target}")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.set_xscale("log")
    ax.set_yscale("log")
    n_lo, n_hi = min(o[0] for o in obs) / 3, max(o[0] for o in obs) * 30
    d_lo, d_hi = min(o[1] for o in obs) / 3, max(o[1] for o in obs) * 30
    nn, dd = np.meshgrid(np.geomspace(n_lo, n_hi, 120), np.geomspace(d_lo, d_hi, 120))
    zz = loss_fn(nn.ravel(), dd.ravel(), np.full(nn.size, fid)).reshape(nn.shape)
    levels = _contour_levels(zz, [o[2] for o in obs])
    norm = plt.Normalize(levels[0], levels[-1])
    cs = ax.contour(dd, nn, zz, levels=levels, cmap="viridis", norm=norm, linewidths=0.8)
    ax.clabel(cs, fontsize=7, fmt="%.3g")
    n_star, d_star = _optimal_curve(loss_fn, fid, flops_per_param_sample, n_lo, n_hi, d_lo,
                                    d_hi)
    ax.plot(d_star, n_star, "r-", lw=2, label="compute-optimal N*(F)")
    sc = ax.scatter([o[1] for o in obs], [o[0] for o in obs], c=[o[2] for o in obs],
                    cmap="viridis", norm=norm, edgecolors="k", s=28, zorder=3, label="observed")
    fig.colorbar(sc, ax=ax, label=f"observed {target}")
    ax.set_xlim(d_lo, d_hi)
    ax.set_ylim(n_lo, n_hi)
    ax.set_xlabel("training samples seen D")
    ax.set_ylabel("parameters N")
    ax.set_title(f"Fitted law: iso-{target} contours ({at})", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    caption = (f"Contours of {target} under the fitted {law_name} law at {at} over "
               f"model size and samples, the {len(obs)} observed evaluations, and the "
               f"compute-optimal N*(F) curve under FLOPs = {flops_per_param_sample:g}·N·D "
               "(the law's constant).")
    return _save(fig, path, title, caption)


def _optimal_curve(loss_fn: LossFn, fid: float, k: float, n_lo: float, n_hi: float,
                   d_lo: float, d_hi: float) -> tuple[list[float], list[float]]:
    """N*(F), D*(F) by a grid search along each FLOPs level F = k·N·D."""
    n_star, d_star = [], []
    cand = np.geomspace(n_lo / 10, n_hi * 10, 400)
    for b in np.geomspace(k * n_lo * d_lo, k * n_hi * d_hi, 60):
        d_c = b / (k * cand)
        v = loss_fn(cand, d_c, np.full(cand.size, fid))
        if not np.isfinite(v).any():
            continue
        i = int(np.nanargmin(v))
        n_star.append(float(cand[i]))
        d_star.append(float(d_c[i]))
    return n_star, d_star


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


def predicted_vs_actual(points: Sequence[tuple[float, float, bool]], path: Path,
                        target: str, law_name: str, title: str = "Predicted vs actual"
                        ) -> Result:
    """Scatter of (actual, predicted) values; held-out points marked."""
    if not points:
        return Skipped(title, f"no run's final evaluation carries {target}")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    a = np.asarray([p[0] for p in points])
    b = np.asarray([p[1] for p in points])
    held = np.asarray([p[2] for p in points], dtype=bool)
    ax.scatter(a[~held], b[~held], s=20, label="fitted")
    if held.any():
        ax.scatter(a[held], b[held], s=60, marker="*", color="crimson", label="held out")
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    pad = max(hi - lo, abs(hi) * 1e-3, 1e-12) * 0.05
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1, label="y = x")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(f"actual {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.set_title(title)
    ax.legend(fontsize=8)
    caption = (f"Final {target} of {len(points)} runs against the {law_name} law's prediction"
               + (f"; stars are the {int(held.sum())} runs left out of the fit." if held.any()
                  else "."))
    return _save(fig, path, title, caption)


# -- cost, energy, CO2 ----------------------------------------------------------------------------
QUANTITIES = (("cost_usd", "electricity cost (USD)", ("cost_usd",)),
              ("energy_kwh", "energy (kWh)", ("facility_energy_kwh", "energy_kwh",
                                             "it_energy_kwh")),
              ("co2_kg", "CO2 (kg)", ("co2_kg",)))
"""The energy figure's panels: name, axis label, the energy-record fields (first present)."""


def energy_value(rec: dict[str, Any], fields: Sequence[str]) -> float | None:
    """The first of ``fields`` an energy record carries as a positive number."""
    for f in fields:
        v = _number(rec.get(f))
        if v is not None and v > 0:
            return v
    return None


def energy_vs_flops(runs: Sequence[Run], path: Path,
                    laws: dict[str, Any] | None = None) -> Result:
    """Cost, energy and CO2 per run vs training FLOPs (log-log), measured vs estimated marked.

    One panel per quantity some run's energy record carries (a cost without kWh draws the cost
    panel only); ``laws`` are power laws by quantity field (``{"C", "alpha"}``, e.g. a
    power-law fit's ``also``, or a list of them, each with an optional legend ``label``) drawn
    over the data.
    """
    title = "Cost, energy and CO2 vs compute"
    laws = laws or {}
    panels = []
    for name, label, fields in QUANTITIES:
        pts = [(_number(r.final.get("train_flops")), energy_value(e, fields),
                e.get("basis") == "measured") for r in runs for e in r.energy[-1:]]
        pts = [p for p in pts if p[0] and p[1]]
        found = next((laws[f] for f in (name, *fields) if f in laws), None) or []
        if pts:
            panels.append((name, label, pts, found if isinstance(found, list) else [found]))
    if not panels:
        return Skipped(title, "no run has an energy record with cost, kWh or CO2 and "
                       "train_flops")
    plt = _plt()
    fig, axs = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    for ax, (_name, label, pts, found) in zip(axs[0], panels, strict=True):
        _energy_panel(ax, label, pts, found)
    bases = sorted({("measured" if m else "estimated") for _, _, pts, _ in panels
                    for *_, m in pts})
    drawn = [law for p in panels for law in p[3]]
    caption = (f"{', '.join(p[1] for p in panels)} per run against training FLOPs, log-log; "
               f"figures are {' and '.join(bases)} (filled: measured, hollow: estimated; the "
               "energy records say how)"
               + ("; lines: power laws C·TFLOPs^α (Debenedetti et al.'s units: x in TFLOPs), "
                  "as the legends name them; those marked fitted here are fitted to the "
                  "accuracy law's best run per FLOPs bin." if drawn else "."))
    return _save(fig, path, title, caption)


def _energy_panel(ax, label: str, pts: list, laws: Sequence[dict[str, Any]]) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*log_limits([p[0] for p in pts]))
    ax.set_ylim(*log_limits([p[1] for p in pts]))
    for measured, style, name in ((True, {"color": "C2"}, "measured"),
                                  (False, {"facecolors": "none", "edgecolors": "C1"},
                                   "estimated")):
        group = [p for p in pts if p[2] is measured]
        if group:
            ax.scatter([p[0] for p in group], [p[1] for p in group], s=18,
                       label=f"{name} ({len(group)})", **style)
    x = np.geomspace(*ax.get_xlim(), 50)
    for law, (color, style) in zip(laws, (("k", "--"), ("C2", "-."), ("C4", ":")) * 4,
                                   strict=False):
        ax.plot(x, float(law["C"]) * x ** float(law["alpha"]), color=color, linestyle=style,
                lw=1, label=law.get("label") or paper_formula(law, percent=False, digits=3)
                + (" (fitted here)" if law.get("fitted_here") else ""))
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel(label)
    ax.set_title(label.split(" (")[0])
    ax.legend(fontsize=7)


# -- GBR and compute-optimal settings -------------------------------------------------------------
def optimal_vs_flops(budgets: np.ndarray, rows: dict[str, np.ndarray], path: Path,
                     target: str, law_name: str,
                     bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                     observed: Sequence[float] = (), at: str = "") -> Result:
    """N*, D* and the target at them against the FLOPs budget (log-log), with bands; ``at``
    names the quality the law is evaluated at (``FID = 2``), for the caption."""
    title = "Compute-optimal N*, D*, L* vs compute"
    bands = bands or {}
    plt = _plt()
    fig, axs = plt.subplots(1, 3, figsize=(12.0, 3.8))
    labels = {"n": "N* (parameters)", "d": "D* (samples)", "q": f"{target} at N*, D*"}
    for ax, key in zip(axs, ("n", "d", "q"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        y = rows[key]
        ok = np.isfinite(y) & (y > 0)
        ax.set_xlim(*log_limits(budgets))
        lims = list(y[ok])
        if key in bands:
            lo, hi = bands[key]
            good = np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
            ax.fill_between(budgets[good], lo[good], hi[good], color="C0", alpha=0.2,
                            label="bootstrap band (95%)")
            lims += list(lo[good]) + list(hi[good])
        ax.set_ylim(*log_limits(lims))
        ax.plot(budgets[ok], y[ok], "C0-", lw=1.5, label=labels[key])
        if observed:
            ax.axvspan(min(observed), max(observed), color="k", alpha=0.06,
                       label="FLOPs of the runs")
        if key == "q":
            _plain_y(ax)
        ax.set_xlabel("training compute (FLOPs)")
        ax.set_ylabel(labels[key])
        ax.legend(fontsize=7)
    axs[1].set_title(title)
    caption = (f"The {law_name} law's compute-optimal model size N*, samples D* and {target} "
               f"at them for budgets {budgets.min():.2g} to {budgets.max():.2g} FLOPs"
               + (f" at {at}" if at else "")
               + ("; shaded: the runs' FLOPs" if observed else "")
               + ("; bands from the law's bootstrap samples." if bands else "."))
    return _save(fig, path, title, caption)
