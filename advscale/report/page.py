"""Build the report folder: PNG figures plus one self-contained ``report.html``.

The page embeds every figure as a base64 data URI (it opens anywhere, even mailed) and links
the PNG files beside it; a figure without data is left out and listed with the reason. Tables
list the runs (the records → runs table of :mod:`advscale.records.rows`) and the laws.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advscale.core.fileio import atomic_write
from advscale.errors import AdvscaleError
from advscale.laws.filters import RecordFilter
from advscale.laws.law import Law
from advscale.laws.powerlaw import best_per_bin
from advscale.records.rows import attack_column, run_row
from advscale.report import figures, quality
from advscale.report import gbr as gbr_figures
from advscale.report.backtest import backtest_figure
from advscale.report.field import field_figures
from advscale.report.figures import AccuracyPoint, Drawn, Result, Skipped
from advscale.report.laws import (
    is_power_law,
    law_metric,
    loss_function,
    quality_laws,
    record_approach,
)
from advscale.report.metric import metric_symbol, quality_name, records_metric
from advscale.report.runs import Run, group_runs

LawLoss = Callable[[dict[str, Any]], "figures.LossFn | None"]
MAX_BAND_SAMPLES = 200
"""Bootstrap samples used for the bands drawn (the law may carry more)."""


def build_report(
    records: Iterable[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    laws: Sequence[dict[str, Any]] = (),
    law_loss: LawLoss | None = None,
    held_out: Sequence[tuple[float, float]] = (),
    title: str = "advscale scaling study",
    notes: Sequence[str] = (),
    published: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Write figures and ``report.html`` into ``out_dir``; return what was written.

    ``laws`` are ``fit`` records (``fit`` records among ``records`` count too);
    ``law_loss(fit_record)`` turns one into ``L(N, D, FID)`` (default:
    :func:`advscale.report.laws.loss_function`). ``held_out`` are (actual, predicted) pairs of
    runs left out of the fit, marked in the predicted-vs-actual figure. The result lists the
    figures drawn, those ``skipped`` (with why) and each figure's ``axes`` (labels, scales,
    limits, legend entries). ``published`` runs (:mod:`advscale.laws.published` entries) are
    placed on the first Approach 2/3 law (Figures 6 and 7; ``published`` in the result).
    """
    law_loss = law_loss or loss_function
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, others = group_runs(records)
    laws = list(laws) + others.get("fit", [])
    budgets = [float(p["train_flops"]) for p in others.get("prediction", [])
               if figures._number(p.get("train_flops"))]
    results: list[Result] = []
    if runs:
        results.append(figures.learning_curves(runs, out / "learning_curves.png"))
        results += _loss_law_figures(runs, laws, law_loss, held_out, out, budgets)
        results += _quality_figures(runs, laws, law_loss, out, budgets)
        power = next((law for law in laws if is_power_law(law)), None)
        results.append(_accuracy_figure(runs, power, out / "accuracy_vs_flops.png"))
        results.append(figures.energy_vs_flops(runs, out / "energy_vs_flops.png",
                                               energy_laws(runs, power)))
    gbr = next((law for law in laws if _approach_name(law) == "gbr"), None)
    if gbr is not None:
        results.append(gbr_figures.gbr_predictions(gbr, out / "gbr_predicted_vs_actual.png"))
        results.append(gbr_figures.feature_importances(gbr, out / "feature_importances.png"))
    tested = next((law for law in laws if law.get("backtest")), None)
    if tested is not None:
        results.append(backtest_figure(tested, out / "backtest.png"))
    field_results, placed = field_figures(laws, published, out)
    results += field_results
    drawn = [r for r in results if isinstance(r, Drawn)]
    skipped = [r for r in results if isinstance(r, Skipped)]
    if not runs:
        skipped.append(Skipped("Runs", "the records hold no train.eval records"))
    page = _render(title, drawn, skipped, runs, laws, notes, _placements_html(placed))
    with atomic_write(out / "report.html") as f:
        f.write(page)
    return {"report": str(out / "report.html"), "figures": [str(d.path) for d in drawn],
            "runs": len(runs), "laws": len(laws),
            "skipped": [{"figure": s.title, "reason": s.reason} for s in skipped],
            "axes": {d.path.name: d.axes for d in drawn},
            **({"published": placed} if placed else {})}


def energy_laws(runs: Sequence[Run], power: dict[str, Any] | None
                ) -> dict[str, dict[str, Any]]:
    """The power law's ``also`` laws, plus a fit for each energy panel it lacks, made like
    them: ``C·FLOPs^α`` by least squares in log-log space over the law's best run per FLOPs
    bin (``selected_runs``), marked ``fitted_here``."""
    from advscale.laws.approach1 import loglog_fit

    laws = dict((power or {}).get("also") or {})
    chosen = set((power or {}).get("selected_runs") or [])
    for name, _label, fields in figures.QUANTITIES:
        if not chosen or any(f in laws for f in (name, *fields)):
            continue
        pts = [(figures._number(r.final.get("train_flops")), figures.energy_value(e, fields))
               for r in runs if r.run_id in chosen for e in r.energy[-1:]]
        pts = [p for p in pts if p[0] and p[1] and p[1] > 0]
        if len(pts) >= 3:
            fit = loglog_fit(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
            laws[name] = {"C": fit["k"], "alpha": fit["slope"], "fitted_here": True}
    return laws


def _approach_name(law: dict[str, Any]) -> str | None:
    appr = record_approach(law)
    return appr.name if appr is not None else None


def _loss_law_figures(runs, laws, law_loss, held_out, out: Path, budgets) -> list[Result]:
    """Isoloss contours, predicted vs actual and N*/D*/L* of the first law of (N, D)."""
    loss_law = next((law for law in laws if law_loss(law) is not None), None)
    if loss_law is None:
        return [Skipped("Fitted law", "no law of N and D (Approach 2 or 3) was given")]
    fn = law_loss(loss_law)
    runs = _runs_of_law(runs, loss_law)
    fid = _typical_fid(runs)
    target = str(loss_law.get("target", "adv_loss"))
    name = law_title(loss_law)
    k = _flops_constant(loss_law)
    pairs = _predicted_vs_actual(runs, fn, held_out, target)
    at = quality_name(law_metric(loss_law) or runs_metric(runs), fid)
    return [figures.law_fit(runs, out / "law_fit.png", fn, fid, k, target, name, at),
            figures.predicted_vs_actual(pairs, out / "predicted_vs_actual.png", target, name),
            _optimal_figure(runs, loss_law, fid, target, name, out / "optimal_vs_flops.png",
                            budgets, at)]


def runs_metric(runs: Sequence[Run]) -> str | None:
    """The quality metric the runs' synthetic sources name (``a+b`` for several), or None."""
    return records_metric(p for r in runs for p in r.points)


# -- the quality panels -------------------------------------------------------------------------
QUALITY_TITLES = ("Loss vs samples per quality", "Law across qualities",
                  "N*, D* vs compute per quality")


def _quality_figures(runs, laws, law_loss, out: Path, budgets) -> list[Result]:
    """Loss vs D per quality; each law across qualities (Figure 5); N*, D* per quality."""
    chosen = quality_laws(laws)
    metric = runs_metric(runs)
    usable, refused = [], []
    for law in chosen:
        lm = law_metric(law)
        if lm is not None and metric is not None and lm != metric:
            refused.append(f"the {law_title(law)} law's quality metric is {lm}, the runs' "
                           f"{metric}: values on different scales")
        else:
            usable.append(law)
            metric = metric or lm
    target = str((usable or chosen or [{}])[0].get("target", "adv_loss"))
    results: list[Result] = [quality.loss_vs_samples(
        runs, out / "quality_loss_vs_samples.png", target, metric, figures._eval_attack(runs))]
    gate = quality.quality_gate(runs, "", metric)
    if gate is not None or not usable:
        why = gate.reason if gate is not None else "; ".join(refused) or (
            "no Approach 3 law, nor an Approach 2 law fitted across qualities, was given")
        return results + [Skipped(t, why) for t in QUALITY_TITLES[1:]]
    for law in usable:
        fn = _target_function(law, law_loss(law) or loss_function(law))
        note = f"; R² {law['r2']:.3f}" if figures._number(law.get("r2")) is not None else ""
        results.append(quality.law_across_qualities(
            runs, out / f"quality_fit_{_approach_name(law)}.png", fn,
            str(law.get("target", target)), metric, law_title(law), note))
    named = []
    for law in usable:
        try:
            named.append((law_title(law), Law(law)))
        except AdvscaleError:
            continue
    results.append(quality.optimal_by_quality(runs, out / "quality_optimal.png", named,
                                              metric, budgets))
    return results


def law_title(law: dict[str, Any]) -> str:
    """How a caption names a law: its approach and target (``Approach 2 (adv_loss)``)."""
    appr = law.get("approach")
    label = f"Approach {appr}" if str(appr) in ("1", "2", "3") else str(appr or "fitted")
    return f"{label} ({law.get('target', 'adv_loss')})"


def _flops_constant(law: dict[str, Any]) -> float:
    try:
        return Law(law).k
    except AdvscaleError:
        return figures._number(law.get("flops_per_param_sample")) or 0.0


def _runs_of_law(runs: Sequence[Run], law: dict[str, Any]) -> list[Run]:
    """The runs at the qualities the law was fitted on (its ``data.fids``), so a law fitted at
    one quality is drawn over that quality's runs only; all runs when the law names none."""
    fids = (law.get("data") or {}).get("fids")
    if not fids:
        return list(runs)
    keep = [r for r in runs if any(abs((r.fid or 0.0) - f) <= 1e-6 * max(1.0, f) for f in fids)]
    return keep or list(runs)


def _typical_fid(runs: Sequence[Run]) -> float:
    fids = [r.fid for r in runs if r.fid is not None]
    return float(sorted(fids)[len(fids) // 2]) if fids else 0.0


def _predicted_vs_actual(runs, fn, held_out, target: str) -> list[tuple[float, float, bool]]:
    pts = []
    for r in runs:
        p = r.final
        if figures._number(p.get(target)) and p.get("samples_seen") and r.params:
            pred = fn(np.asarray([r.params], float), np.asarray([p["samples_seen"]], float),
                      np.asarray([r.fid or 0.0]))[0]
            if np.isfinite(pred):
                pts.append((float(p[target]), float(pred), False))
    marked = {round(a, 9) for a, _ in held_out}
    return [(a, b, round(a, 9) in marked) for a, b, _ in pts]


def _target_function(law: dict[str, Any], fn):
    """The law's prediction of its target: an accuracy fitted as an error (``quantity``
    ``error``) back as the accuracy the records carry."""
    if law.get("quantity") != "error":
        return fn
    return lambda n, d, fid: 1.0 - fn(n, d, fid)


# -- N*, D*, L* against FLOPs -------------------------------------------------------------------
def _optimal_figure(runs, law_doc, fid, target, name, path: Path, budgets,
                    at: str = "") -> Result:
    title = "Compute-optimal N*, D*, L* vs compute"
    try:
        law = Law(law_doc)
    except AdvscaleError as e:
        return Skipped(title, str(e))
    if not law.supports("optimal"):
        return Skipped(title, f"the {name} law has no compute-optimal settings")
    observed = [f for r in runs for p in r.points
                if (f := figures._number(p.get("train_flops"))) and f > 0]
    span = observed + list(budgets)
    if not span:
        return Skipped(title, "no train_flops in the records and no budgets asked for")
    grid = np.geomspace(min(span) / 10, max(span) * 10, 40)
    rows = _optimal_rows(law, grid, fid, None)
    if not np.isfinite(rows["n"]).any():
        return Skipped(title, f"the {name} law gives no finite optimum over these budgets")
    bands = _optimal_bands(law, grid, fid)
    return figures.optimal_vs_flops(grid, rows, path, target, name, bands, observed, at)


def _optimal_rows(law: Law, grid: np.ndarray, fid: float, params: dict | None
                  ) -> dict[str, np.ndarray]:
    out = {"n": [], "d": [], "q": []}
    for b in grid:
        try:
            n, d, q = law.optimal(float(b), fid, params)
        except (AdvscaleError, ArithmeticError, ValueError):
            n = d = q = float("nan")
        out["n"].append(n)
        out["d"].append(d)
        out["q"].append(q)
    return {k: np.asarray(v, float) for k, v in out.items()}


def _optimal_bands(law: Law, grid: np.ndarray, fid: float
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    samples = law.samples()[:MAX_BAND_SAMPLES]
    if len(samples) < 10:
        return {}
    stack = [_optimal_rows(law, grid, fid, s) for s in samples]
    out = {}
    for key in ("n", "d", "q"):
        arr = np.vstack([s[key] for s in stack])
        with np.errstate(all="ignore"):
            lo, hi = np.nanpercentile(arr, [2.5, 97.5], axis=0)
        out[key] = (lo, hi)
    return out


# -- accuracy against FLOPs ---------------------------------------------------------------------
def _accuracy_figure(runs: Sequence[Run], law: dict[str, Any] | None, path: Path) -> Result:
    """Debenedetti et al.'s figure: the power law's own target, else AutoAttack, else PGD."""
    target, attack = _accuracy_target(runs, law)
    points = []
    filters = [RecordFilter(e) for e in (law or {}).get("filters") or []]
    for r in runs:
        flops = figures._number(r.final.get("train_flops"))
        acc = r.attack_acc(attack) if target == "aa_acc" else r.final.get(target)
        acc = figures._number(acc)
        if flops and flops > 0 and acc is not None:
            rec = {**r.final, "N": r.params, "D": r.final.get("samples_seen"),
                   "FID": r.fid or 0.0, target: acc}
            points.append(AccuracyPoint(r.run_id, flops, acc, acc > 0 and _passes(filters,
                                                                                   rec)))
    same = law is not None and law.get("target") == target
    best = set(law.get("selected_runs") or []) if same and law else _best(points)
    band = _power_band(law, points) if same else None
    params = (law or {}).get("params") if same else None
    label = attack_label(attack) if target == "aa_acc" else attack
    return figures.accuracy_vs_flops(points, path, label, best, params, band)


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


def _power_band(law, points) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    try:
        samples = Law(law).samples()[:MAX_BAND_SAMPLES] if law else []
    except AdvscaleError:
        return None
    if len(samples) < 10 or not points:
        return None
    lo, hi = figures.log_limits([p.flops for p in points])
    x = np.geomspace(lo, hi, 60)
    ys = np.vstack([float(s["C"]) * x ** float(s["alpha"]) for s in samples])
    low, high = np.percentile(ys, [2.5, 97.5], axis=0)
    return x, low, high


# -- the page -----------------------------------------------------------------------------------
def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


WIDE_PX = 900
"""A figure wider than this (several panels) takes the page's whole width."""


def _wide(path: Path) -> str:
    """`` class="wide"`` for a PNG wider than :data:`WIDE_PX` pixels, else nothing."""
    head = path.read_bytes()[:24]
    wide = head[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(head[16:20], "big") > WIDE_PX
    return ' class="wide"' if wide else ""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10_000:
        return f"{v:,}"
    return html.escape(str(v))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _runs_html(runs: Sequence[Run]) -> str:
    attacks = sorted({str(t.rec.get("attack")) for r in runs for t in r.attacks})
    evals = sorted({str(p.get("eval_attack")) for r in runs for p in r.points
                    if p.get("eval_attack")})
    cols = ["run_id", "model", "params", "samples_seen", "fid", "train_flops", "clean_acc",
            "robust_acc", *[attack_column(a) for a in attacks], "adv_loss", "cost_usd",
            "energy_kwh", "energy_basis"]
    heads = ["run", "model", "N (params)", "D (samples)", _quality_header(runs),
             "FLOPs", "clean acc",
             f"robust acc ({', '.join(evals) or 'eval'})",
             *[f"{attack_label(a)} acc" for a in attacks], "adv loss", "cost (USD)",
             "energy (kWh)", "energy basis"]
    rows = [[row.get(c) for c in cols] for row in (run_row(r, attacks) for r in runs)]
    return _table(heads, rows)


def _quality_header(runs: Sequence[Run]) -> str:
    """The runs table's quality column: ``FID`` for the published protocol or real data only,
    else the metric's name."""
    if not any(quality.run_quality(r) > 0 for r in runs):
        return "FID"
    return metric_symbol(runs_metric(runs))


def _laws_html(laws: Sequence[dict[str, Any]]) -> str:
    rows = []
    for law in laws:
        params = law.get("params") or law.get("feature_importances") or {}
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(params.items())[:10])
        rows.append((law.get("approach"), law.get("target"), law.get("n_runs"),
                     law.get("n_points"), shown, law.get("r2"), law.get("rmse")))
    if not rows:
        return "<p>No fitted laws given.</p>"
    return _table(["approach", "target", "runs", "points", "parameters", "R²", "RMSE"], rows)


def _placements_html(placed: Sequence[dict[str, Any]]) -> str:
    """The published (or own) runs placed on the law, one row each (empty when none)."""
    if not placed:
        return ""
    rows = [(p["run"], p.get("params"), p.get("samples_seen"), p.get("fid"),
             p.get("train_flops"), p.get("omega_n"),
             None if p.get("compute_overhead") is None else 100 * p["compute_overhead"],
             p.get("accuracy"), p.get("reported_aa_acc"), p.get("flops_optimal_for_loss"),
             p.get("why", "")) for p in placed]
    return "<h2>Published runs on the law</h2>" + _table(
        ["run", "N", "D", "FID", "FLOPs", "N/N*", "overhead (%)", "predicted accuracy",
         "reported AA", "FLOPs optimal for its loss", "not placed because"], rows)


def _render(title, drawn: Sequence[Drawn], skipped: Sequence[Skipped], runs: Sequence[Run],
            laws, notes, extra: str = "") -> str:
    figs = "".join(
        f'<figure{_wide(d.path)}><h2>{html.escape(d.title)}</h2>{_img(d.path)}<figcaption>'
        f'{html.escape(d.caption)} <a href="{html.escape(d.path.name)}">PNG</a></figcaption>'
        f'</figure>' for d in drawn)
    left_out = "".join(f"<li><b>{html.escape(s.title)}</b>: {html.escape(s.reason)}</li>"
                       for s in skipped)
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
figure {{ display: inline-block; vertical-align: top; margin: 0 1rem 1.5rem 0; max-width: 520px; }}
figure.wide {{ display: block; max-width: 100%; }}
figure img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ font-size: 0.85rem; color: #555; }}
table {{ border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }}
th {{ background: #f3f3f3; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{f"<ul>{notes_html}</ul>" if notes_html else ""}
<section>{figs}</section>
{f"<h2>Figures left out</h2><ul>{left_out}</ul>" if left_out else ""}
<h2>Runs</h2>{_runs_html(runs)}
<h2>Fitted laws</h2>{_laws_html(laws)}
{extra}
<p style="font-size:0.8rem;color:#777">Generated by advscale. FLOPs are plain FLOPs;
accuracies are fractions of the evaluated images (percent on the figures).</p>
</body></html>
"""
