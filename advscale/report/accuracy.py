"""Robust accuracy against training FLOPs (Debenedetti et al., Figure 3a) with every power law.

The figure's target is the first power law's (else AutoAttack, else the training-time PGD
evaluation); every power law of that target is drawn, named as the user named it, with its
bootstrap band where it carries samples. Accuracies under ``floor_pct`` percent (the one-step
runs near 0%) sit at the axis floor, so the log axis spans the envelope, not the collapse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws.filters import RecordFilter
from advscale.laws.law import Law
from advscale.laws.powerlaw import best_per_bin
from advscale.report.figures import (
    AccuracyPoint,
    Result,
    Skipped,
    _number,
    _plt,
    _save,
    log_limits,
    paper_formula,
)
from advscale.report.laws import law_kind
from advscale.report.runs import Run

MAX_BAND_SAMPLES = 200
"""Bootstrap samples used for a band drawn (the law may carry more)."""
ACC_FLOOR_PCT = 1.0
"""Default accuracy floor (percent) of the log axis: runs below it are drawn at the floor."""
STYLES = (("k", "--"), ("C2", "-."), ("C4", ":"), ("C1", (0, (5, 1))), ("C5", (0, (3, 1, 1, 1))))


@dataclass
class PowerLine:
    """One law of FLOPs as drawn: its name, the law (:class:`~advscale.laws.law.Law`: its
    ``at_budget`` is the curve), bootstrap band, and whether the user named it (a preset, a
    file) or it is an unnamed fit record."""

    name: str
    law: Law
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    named: bool = True

    @property
    def params(self) -> dict[str, Any]:
        return self.law.params

    @property
    def words(self) -> str:
        """``power law 50.86·TFLOPs^0.01 (%)`` (C·x^α in the paper's units), else the law's
        form and parameters."""
        if {"C", "alpha"} <= set(self.params):
            return f"power law {paper_formula(self.params)}"
        return f"{self.law.form} law (" + ", ".join(
            f"{k}={v:.4g}" for k, v in self.params.items()) + ")"

    @property
    def label(self) -> str:
        """The legend's words: ``debenedetti2024: power law 50.86·TFLOPs^0.01 (%)``."""
        return f"{self.name}: {self.words}" if self.named else self.words


def _caption_words(line: PowerLine) -> str:
    """``the power law NAME, 50.86·TFLOPs^0.01 (%)``, or ``the fitted power law ...``."""
    if not line.named:
        return f"the fitted {line.words}"
    kind, _, formula = line.words.partition(" law ")
    return f"the {kind} law {line.name}, {formula}"


def _law_lines(same: Sequence[tuple[str, dict[str, Any]]], points: Sequence[AccuracyPoint]
               ) -> list[PowerLine]:
    """The laws of ``same`` that load and answer a FLOPs budget, as lines to draw."""
    lines = []
    for name, doc in same:
        try:
            law = Law(doc)
        except AdvscaleError:
            continue
        if law.supports("at_budget"):
            lines.append(PowerLine(name, law, _power_band(law, points),
                                   not name.startswith(law_kind(doc))))
    return lines


def accuracy_figure(runs: Sequence[Run], laws: Sequence[tuple[str, dict[str, Any]]],
                    path: Path, floor_pct: float = ACC_FLOOR_PCT) -> tuple[Result, list[str]]:
    """The figure, and the names of the power ``laws`` ((name, fit record) pairs) drawn on it:
    those whose target is the figure's (the first law's)."""
    first = laws[0][1] if laws else None
    target, attack = _accuracy_target(runs, first)
    filters = [RecordFilter(e) for e in (first or {}).get("filters") or []]
    points = []
    for r in runs:
        flops = _number(r.final.get("train_flops"))
        acc = _number(r.attack_acc(attack) if target == "aa_acc" else r.final.get(target))
        if flops and flops > 0 and acc is not None:
            rec = {**r.final, "N": r.params, "D": r.final.get("samples_seen"),
                   "FID": r.fid or 0.0, target: acc}
            points.append(AccuracyPoint(r.run_id, flops, acc, acc > 0 and _passes(filters, rec)))
    same = [(n, law) for n, law in laws if law.get("target") == target]
    fitted = next((law for _, law in same if law.get("selected_runs")), None)
    best = set(fitted["selected_runs"]) if fitted else _best(points)
    lines = _law_lines(same, points)
    label = attack_label(attack) if target == "aa_acc" else attack
    result = accuracy_vs_flops(points, path, label, best, lines, floor_pct)
    return result, [line.name for line in lines] if not isinstance(result, Skipped) else []


def _accuracy_target(runs: Sequence[Run], law: dict[str, Any] | None) -> tuple[str, str]:
    """(target, attack name) for the accuracy figure."""
    target = (law or {}).get("target")
    attack = (((law or {}).get("provenance") or {}).get("config") or {}).get("attack")
    if target is None:
        attacks = [str(t.rec.get("attack")) for r in runs for t in r.attacks]
        if attacks:
            target, attack = "aa_acc", "aa-standard" if "aa-standard" in attacks else attacks[0]
        else:
            target = "robust_acc"
    if target == "aa_acc":
        return target, str(attack or "aa-standard")
    names = sorted({str(p.get("eval_attack")) for r in runs for p in r.points
                    if p.get("eval_attack")})
    return str(target), ", ".join(names) or target


def attack_label(attack: str) -> str:
    """An attack as the figure names it: ``AutoAttack (aa-standard)``, else the name itself."""
    return f"AutoAttack ({attack})" if attack.startswith("aa-") else attack


def _passes(filters: Sequence[RecordFilter], rec: dict[str, Any]) -> bool:
    try:
        return all(f(rec) for f in filters)
    except AdvscaleError:
        return False


def _best(points: Sequence[AccuracyPoint]) -> set[str]:
    kept = [p for p in points if p.kept]
    if len(kept) < 2:
        return {p.run_id for p in kept}
    idx = best_per_bin(np.array([p.flops for p in kept]), np.array([p.acc for p in kept]))
    return {kept[i].run_id for i in idx}


def _power_band(law: Law, points: Sequence[AccuracyPoint]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The 95% band of the law over its bootstrap samples, or None (fewer than 10)."""
    samples = law.samples()[:MAX_BAND_SAMPLES]
    if len(samples) < 10 or not points:
        return None
    lo, hi = log_limits([p.flops for p in points])
    x = np.geomspace(lo, hi, 60)
    ys = np.vstack([np.asarray(law.at_budget(x, params=s), dtype=float) for s in samples])
    low, high = np.percentile(ys, [2.5, 97.5], axis=0)
    return x, low, high


def accuracy_vs_flops(points: Sequence[AccuracyPoint], path: Path, attack: str,
                      best: set[str], lines: Sequence[PowerLine] = (),
                      floor_pct: float = ACC_FLOOR_PCT) -> Result:
    """Robust accuracy vs training FLOPs, log-log (Debenedetti et al., Figure 3a).

    ``points`` are the runs' accuracies (fractions) under ``attack``; those not ``kept`` (the
    first law's filters, or accuracy 0) are faded; accuracies under ``floor_pct`` percent sit at
    the axis floor; ``best`` run ids (the per-bin best the law was fitted to) are marked; each
    power law of ``lines`` is drawn over the data's FLOPs range with its bootstrap band.
    """
    title = "Robust accuracy vs compute"
    if not points:
        return Skipped(title, f"no run has both train_flops and {attack} accuracy")
    pos = [p for p in points if 100 * p.acc >= floor_pct] or [p for p in points if p.acc > 0]
    if not pos:
        return Skipped(title, f"every {attack} accuracy is 0: nothing to draw on a log axis")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*log_limits([p.flops for p in points]))
    ax.set_ylim(*log_limits([100 * p.acc for p in pos]))
    _scatter(ax, points, pos, best, floor_pct)
    for i, line in enumerate(lines):
        _draw_law(ax, line, *STYLES[i % len(STYLES)])
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel(f"robust accuracy under {attack} (%)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    n_kept = sum(p.kept for p in points)
    laws = "; ".join(_caption_words(line) for line in lines)
    caption = (f"Robust accuracy under {attack} of {len(points)} runs against their training "
               f"FLOPs, log-log (cf. Debenedetti et al., Figure 3a); {n_kept} kept, the "
               f"{len(best)} best per FLOPs bin (the envelope) marked; accuracies under "
               f"{floor_pct:g}% sit at the axis floor"
               + (f"; {laws}, in Debenedetti et al.'s units (accuracy in percent, x in "
                  "TFLOPs; shaded: a fit's 95% bootstrap band)" if lines
                  else "; no power law of this target given") + ".")
    return _save(fig, path, title, caption)


def _scatter(ax, points, pos, best: set[str], floor_pct: float) -> None:
    """The runs: kept, the envelope (best per bin), excluded, and those at the axis floor."""
    shown = {id(p) for p in pos}
    groups = (("all runs", [p for p in pos if p.kept and p.run_id not in best],
               {"alpha": 0.45, "s": 14, "color": "C0"}),
              ("best per FLOPs bin (fitted)", [p for p in pos if p.run_id in best],
               {"s": 34, "color": "C3", "edgecolors": "k", "zorder": 3, "marker": "D"}),
              ("excluded by the law's filters", [p for p in pos if not p.kept],
               {"alpha": 0.15, "s": 12, "color": "grey"}))
    for label, group, style in groups:
        if group:
            ax.scatter([p.flops for p in group], [100 * p.acc for p in group],
                       label=f"{label} ({len(group)})", **style)
    low = [p for p in points if id(p) not in shown]
    if low:
        ax.scatter([p.flops for p in low], [ax.get_ylim()[0]] * len(low), marker="v", s=14,
                   color="grey", alpha=0.35, clip_on=False,
                   label=f"accuracy 0 or under {floor_pct:g}%, at the axis floor ({len(low)})")


def _draw_law(ax, line: PowerLine, color: str, style: Any) -> None:
    """One power law: its band (filled and edged, so a narrow one shows) and its line."""
    x = np.geomspace(*ax.get_xlim(), 100)
    if line.band is not None:
        bx, lo, hi = line.band
        ax.fill_between(bx, 100 * lo, 100 * hi, color=color, alpha=0.3, lw=0,
                        label=f"{line.name}: bootstrap band (95%)" if line.named
                        else "bootstrap band (95%)")
        for edge in (lo, hi):
            ax.plot(bx, 100 * edge, color=color, lw=0.6, alpha=0.8)
    ax.plot(x, 100 * np.asarray(line.law.at_budget(x), dtype=float), color=color,
            linestyle=style, lw=1.6,
            label=line.label)
