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
from advscale.laws.law import Law
from advscale.report import figures, quality
from advscale.report import gbr as gbr_figures
from advscale.report.accuracy import ACC_FLOOR_PCT, MAX_BAND_SAMPLES, accuracy_figure
from advscale.report.backtest import backtest_figure
from advscale.report.field import field_figures, placing_law
from advscale.report.figures import Drawn, Result, Skipped
from advscale.report.laws import (
    draws,
    law_kind,
    law_metric,
    loss_function,
    name_laws,
    quality_laws,
    record_approach,
)
from advscale.report.metric import quality_name
from advscale.report.runs import Run, group_runs
from advscale.report.tables import laws_html, placements_html, runs_html, runs_metric

LawLoss = Callable[[dict[str, Any]], "figures.LossFn | None"]


def build_report(
    records: Iterable[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    laws: Sequence[dict[str, Any]] = (),
    law_loss: LawLoss | None = None,
    held_out: Sequence[tuple[float, float]] = (),
    title: str = "advscale scaling study",
    notes: Sequence[str] = (),
    published: Sequence[dict[str, Any]] = (),
    acc_floor: float = ACC_FLOOR_PCT,
) -> dict[str, Any]:
    """Write figures and ``report.html`` into ``out_dir``; return what was written.

    ``laws`` are ``fit`` records (``fit`` records among ``records`` count too);
    ``law_loss(fit_record)`` turns one into ``L(N, D, FID)`` (default:
    :func:`advscale.report.laws.loss_function`). ``held_out`` are (actual, predicted) pairs of
    runs left out of the fit, marked in the predicted-vs-actual figure. The result lists the
    figures drawn, those ``skipped`` (with why) and each figure's ``axes`` (labels, scales,
    limits, legend entries). ``published`` runs (:mod:`advscale.laws.published` entries) are
    placed on the first Approach 2/3 law (Figures 6 and 7; ``published`` in the result).
    Every law is named as given (:func:`~advscale.report.laws.name_laws`: ``law_names``) and
    drawn on the figures it applies to (``drawn_on``: name → PNG names); accuracies under
    ``acc_floor`` percent sit at the accuracy figure's axis floor.
    """
    law_loss = law_loss or loss_function
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, others = group_runs(records)
    named = name_laws(list(laws) + others.get("fit", []))
    laws = [{**law, "name": name} for name, law in named]
    budgets = [float(p["train_flops"]) for p in others.get("prediction", [])
               if figures._number(p.get("train_flops"))]
    drawn_on: dict[str, list[str]] = {}
    results = _run_figures(runs, laws, law_loss, held_out, out, budgets, acc_floor, drawn_on)
    results += _law_figures(laws, out, drawn_on)
    field_results, placed = field_figures(laws, published, out)
    results += field_results
    _mark(drawn_on, placing_law_name(laws), *field_results)
    drawn = [r for r in results if isinstance(r, Drawn)]
    skipped = [r for r in results if isinstance(r, Skipped)]
    if not runs:
        skipped.append(Skipped("Runs", "the records hold no train.eval records"))
    page = _render(title, drawn, skipped, runs, laws_html(named, drawn_on), notes,
                   placements_html(placed))
    with atomic_write(out / "report.html") as f:
        f.write(page)
    return {"report": str(out / "report.html"), "figures": [str(d.path) for d in drawn],
            "runs": len(runs), "laws": len(laws),
            "law_names": [name for name, _ in named], "drawn_on": drawn_on,
            "skipped": [{"figure": s.title, "reason": s.reason} for s in skipped],
            "axes": {d.path.name: d.axes for d in drawn},
            **({"published": placed} if placed else {})}


def placing_law_name(laws: Sequence[dict[str, Any]]) -> str | None:
    """The name of the law the published runs are placed on (the first Approach 2/3 law)."""
    return next((d["name"] for d in laws if placing_law([d]) is not None), None)


def _mark(drawn_on: dict[str, list[str]], name: str | None, *results: Result) -> None:
    """Note the figures ``results`` drew as drawn with the law ``name``."""
    if name is None:
        return
    for r in results:
        if isinstance(r, Drawn) and r.path.name not in drawn_on.setdefault(name, []):
            drawn_on[name].append(r.path.name)


def _run_figures(runs, laws, law_loss, held_out, out: Path, budgets, acc_floor: float,
                 drawn_on: dict[str, list[str]]) -> list[Result]:
    """The figures of the runs, with every law that applies drawn on them."""
    if not runs:
        return []
    results: list[Result] = [figures.learning_curves(runs, out / "learning_curves.png")]
    loss_laws = [law for law in laws if draws(law, "law_of_nd") and law_loss(law) is not None]
    if not loss_laws:
        results.append(Skipped("Fitted law", "no law of N and D (Approach 2 or 3) was given"))
    for i, law in enumerate(loss_laws):
        made = _loss_law_figures(runs, law, law_loss, held_out if i == 0 else (), out,
                                 budgets, "" if i == 0 else f"_{i + 1}")
        _mark(drawn_on, law["name"], *made)
        results += made
    results += _quality_figures(runs, laws, law_loss, out, budgets, drawn_on)
    power = [(law["name"], law) for law in laws if draws(law, "accuracy_vs_flops")]
    acc, names = accuracy_figure(runs, power, out / "accuracy_vs_flops.png", acc_floor)
    results.append(acc)
    for name in names:
        _mark(drawn_on, name, acc)
    power = [(name, law) for name, law in power if draws(law, "energy_vs_flops")]
    per_law = [energy_laws(runs, law, fill=i == 0) for i, (_, law) in enumerate(power)]
    merged: dict[str, list[dict[str, Any]]] = {}
    for laws_of in per_law:
        for quantity, law in laws_of.items():
            merged.setdefault(quantity, []).append(law)
    energy = figures.energy_vs_flops(runs, out / "energy_vs_flops.png", merged)
    results.append(energy)
    if isinstance(energy, Drawn):
        shown = {label for ax in energy.axes for label in ax.get("lines", {})}
        for (name, _), laws_of in zip(power, per_law, strict=True):
            if any(str(law.get("label")) in shown for law in laws_of.values()):
                _mark(drawn_on, name, energy)
    return results


def _law_figures(laws, out: Path, drawn_on: dict[str, list[str]]) -> list[Result]:
    """The first GBR's figures (1b, 1c) and the first backtested law's figure."""
    results: list[Result] = []
    gbr = next((law for law in laws if draws(law, "gbr")), None)
    if gbr is not None:
        made = [gbr_figures.gbr_predictions(gbr, out / "gbr_predicted_vs_actual.png"),
                gbr_figures.feature_importances(gbr, out / "feature_importances.png")]
        _mark(drawn_on, gbr["name"], *made)
        results += made
    tested = next((law for law in laws if law.get("backtest")), None)
    if tested is not None:
        results.append(backtest_figure(tested, out / "backtest.png"))
        _mark(drawn_on, tested["name"], results[-1])
    return results


def energy_laws(runs: Sequence[Run], power: dict[str, Any] | None, fill: bool = True
                ) -> dict[str, dict[str, Any]]:
    """The power law's ``also`` laws, each with its legend ``label`` (the law's name, when the
    user gave one, and ``C·TFLOPs^α``), plus (``fill``) a fit for each energy panel it lacks,
    made like them: ``C·FLOPs^α`` by least squares in log-log space over the law's best run per
    FLOPs bin (``selected_runs``), marked ``fitted_here``."""
    from advscale.laws.approach1 import loglog_fit

    name = (power or {}).get("name")
    named = isinstance(name, str) and not name.startswith(law_kind(power or {}))
    laws = {k: dict(v) for k, v in ((power or {}).get("also") or {}).items()}
    chosen = set((power or {}).get("selected_runs") or []) if fill else set()
    for quantity, _label, fields in figures.QUANTITIES:
        if not chosen or any(f in laws for f in (quantity, *fields)):
            continue
        pts = [(figures._number(r.final.get("train_flops")), figures.energy_value(e, fields))
               for r in runs if r.run_id in chosen for e in r.energy[-1:]]
        pts = [p for p in pts if p[0] and p[1] and p[1] > 0]
        if len(pts) >= 3:
            fit = loglog_fit(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
            laws[quantity] = {"C": fit["k"], "alpha": fit["slope"], "fitted_here": True}
    for law in laws.values():
        words = figures.paper_formula(law, percent=False, digits=3) + (
            " (fitted here)" if law.get("fitted_here") else "")
        law["label"] = f"{name}: {words}" if named else words
    return laws


def _approach_name(law: dict[str, Any]) -> str | None:
    appr = record_approach(law)
    return appr.name if appr is not None else None


def _loss_law_figures(runs, loss_law, law_loss, held_out, out: Path, budgets,
                      suffix: str = "") -> list[Result]:
    """Isoloss contours, predicted vs actual and N*/D*/L* of one law of (N, D) (the PNGs of
    the second law on get ``suffix``)."""
    fn = law_loss(loss_law)
    runs = _runs_of_law(runs, loss_law)
    fid = _typical_fid(runs)
    target = str(loss_law.get("target", "adv_loss"))
    name = law_title(loss_law)
    k = _flops_constant(loss_law)
    pairs = _predicted_vs_actual(runs, fn, held_out, target)
    at = quality_name(law_metric(loss_law) or runs_metric(runs), fid)
    return [figures.law_fit(runs, out / f"law_fit{suffix}.png", fn, fid, k, target, name, at),
            figures.predicted_vs_actual(pairs, out / f"predicted_vs_actual{suffix}.png", target,
                                        name),
            _optimal_figure(runs, loss_law, fid, target, name,
                            out / f"optimal_vs_flops{suffix}.png", budgets, at)]


# -- the quality panels -------------------------------------------------------------------------
QUALITY_TITLES = ("Loss vs samples per quality", "Law across qualities",
                  "N*, D* vs compute per quality")


def _quality_figures(runs, laws, law_loss, out: Path, budgets,
                     drawn_on: dict[str, list[str]]) -> list[Result]:
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
        _mark(drawn_on, law["name"], results[-1])
    named = []
    for law in usable:
        try:
            named.append((law_title(law), Law(law)))
        except AdvscaleError:
            continue
    results.append(quality.optimal_by_quality(runs, out / "quality_optimal.png", named,
                                              metric, budgets))
    for law in usable:
        _mark(drawn_on, law["name"], results[-1])
    return results


def law_title(law: dict[str, Any]) -> str:
    """How a caption names a law: its name as given and its kind
    (``bartoldson2024-approach2: Approach 2 (adv_loss)``), the kind alone when unnamed."""
    kind, name = law_kind(law), law.get("name")
    if not isinstance(name, str) or not name:
        return kind
    return name if kind in name else f"{name}: {kind}"


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


def _render(title, drawn: Sequence[Drawn], skipped: Sequence[Skipped], runs: Sequence[Run],
            laws_table: str, notes, extra: str = "") -> str:
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
div.scroll {{ overflow-x: auto; }}
table.runs {{ font-size: 0.75rem; }}
table.runs td:first-child {{ text-align: left; white-space: nowrap; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{f"<ul>{notes_html}</ul>" if notes_html else ""}
<section>{figs}</section>
{f"<h2>Figures left out</h2><ul>{left_out}</ul>" if left_out else ""}
<h2>Runs</h2><div class="scroll">{runs_html(runs)}</div>
<h2>Laws</h2>{laws_table}
{extra}
<p style="font-size:0.8rem;color:#777">Generated by advscale. FLOPs are plain FLOPs;
accuracies are fractions of the evaluated images (percent on the figures).</p>
</body></html>
"""
