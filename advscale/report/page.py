"""Build the report folder: PNG figures plus one self-contained ``report.html``.

The page embeds every figure as a base64 data URI (it opens anywhere, even mailed) and links
the PNG files beside it. Tables list the runs and the fitted laws.
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
from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.report import figures
from advscale.report.laws import is_power_law, loss_function
from advscale.report.runs import Run, group_runs

LawLoss = Callable[[dict[str, Any]], "figures.LossFn | None"]


def build_report(
    records: Iterable[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    laws: Sequence[dict[str, Any]] = (),
    law_loss: LawLoss | None = None,
    held_out: Sequence[tuple[float, float]] = (),
    title: str = "advscale scaling study",
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Write figures and ``report.html`` into ``out_dir``; return what was written.

    ``laws`` are ``fit`` records; ``law_loss(fit_record)`` turns one into ``L(N, D, FID)``
    (default: :func:`advscale.report.laws.loss_function`). ``held_out`` are (actual, predicted)
    pairs of runs left out of the fit, marked in the predicted-vs-actual figure.
    """
    law_loss = law_loss or loss_function
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, others = group_runs(records)
    laws = list(laws) + others.get("fit", [])
    written: list[tuple[str, Path, str]] = []

    if runs:
        curves = figures.learning_curves(runs, out / "learning_curves.png")
        written.append(("Learning curves", curves,
                        "TRADES (β=5) loss under the evaluation PGD-CW attack of each run's EMA "
                        "model against the "
                        "training FLOPs spent so far, log-log, with the lower envelope "
                        "(Approach 1)."))
    loss_law = next((law for law in laws if law_loss(law) is not None), None)
    if loss_law is not None and runs:
        fn = law_loss(loss_law)
        fid = _typical_fid(runs)
        written.append(("Fitted law", figures.law_fit(runs, out / "law_fit.png", fn, fid=fid),
                        f"Isoloss contours of the fitted Approach {loss_law.get('approach')} law "
                        f"at FID {fid:g} over model size and samples, the observed runs, and "
                        "the compute-optimal N*(F) curve under FLOPs = "
                        f"{PAPER_FLOPS_PER_PARAM_SAMPLE:g}·N·D "
                        "(cf. Figure 4 of Bartoldson et al.)."))
        pairs = _predicted_vs_actual(runs, fn, held_out)
        written.append(("Predicted vs actual",
                        figures.predicted_vs_actual(pairs, out / "predicted_vs_actual.png"),
                        "Final loss of every run against the law's prediction; stars are runs "
                        "left out of the fit."))
    power = next((law for law in laws if is_power_law(law)), None)
    if runs:
        written.append(("Robust accuracy vs compute",
                        figures.accuracy_vs_flops(runs, out / "accuracy_vs_flops.png", power),
                        "Final robust accuracy against training FLOPs (cf. Figure 3 of "
                        "Debenedetti et al.)."))
        energy = figures.energy_vs_flops(runs, out / "energy_vs_flops.png")
        if energy:
            written.append(("Energy vs compute", energy, "Electricity per run (see the energy "
                            "records for whether each figure was measured or estimated)."))
    page = _render(title, written, runs, laws, notes)
    with atomic_write(out / "report.html") as f:
        f.write(page)
    return {"report": str(out / "report.html"),
            "figures": [str(p) for _, p, _ in written], "runs": len(runs), "laws": len(laws)}


def _typical_fid(runs: Sequence[Run]) -> float:
    fids = [r.fid for r in runs if r.fid is not None]
    return float(sorted(fids)[len(fids) // 2]) if fids else 0.0


def _predicted_vs_actual(runs, fn, held_out) -> list[tuple[float, float, bool]]:
    pts = []
    for r in runs:
        p = r.final
        if p.get("adv_loss") and p.get("samples_seen") and r.params:
            pred = fn(np.asarray([r.params], float), np.asarray([p["samples_seen"]], float),
                      np.asarray([r.fid or 0.0]))[0]
            pts.append((float(p["adv_loss"]), float(pred), False))
    marked = {round(a, 9) for a, _ in held_out}
    return [(a, b, round(a, 9) in marked) for a, b, _ in pts]


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and abs(v) >= 10_000:
        return f"{v:,}"
    return html.escape(str(v))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _render(title, written, runs: Sequence[Run], laws, notes) -> str:
    figs = "".join(
        f'<figure><h2>{html.escape(t)}</h2>{_img(p)}<figcaption>{html.escape(c)} '
        f'<a href="{html.escape(p.name)}">PNG</a></figcaption></figure>'
        for t, p, c in written
    )
    run_rows = [
        (r.run_id, r.model, r.params, r.final.get("samples_seen"), r.fid,
         r.final.get("train_flops"), r.final.get("clean_acc"), r.final.get("robust_acc"),
         r.attack_acc("aa-standard"), r.final.get("adv_loss"))
        for r in runs
    ]
    runs_html = _table(["run", "model", "N (params)", "D (samples)", "FID", "FLOPs",
                        "clean acc", "PGD-CW acc (eval)", "AutoAttack acc", "adv loss"], run_rows)
    law_rows = []
    for law in laws:
        params = law.get("params") or {}
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(params.items())[:10])
        law_rows.append((law.get("approach"), law.get("target"), law.get("n_runs"),
                         law.get("n_points"), shown, law.get("r2"), law.get("rmse")))
    laws_html = _table(["approach", "target", "runs", "points", "parameters", "R²", "RMSE"],
                       law_rows) if law_rows else "<p>No fitted laws given.</p>"
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
figure {{ display: inline-block; vertical-align: top; margin: 0 1rem 1.5rem 0; max-width: 520px; }}
figure img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ font-size: 0.85rem; color: #555; }}
table {{ border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }}
th {{ background: #f3f3f3; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{f"<ul>{notes_html}</ul>" if notes_html else ""}
<section>{figs}</section>
<h2>Runs</h2>{runs_html}
<h2>Fitted laws</h2>{laws_html}
<p style="font-size:0.8rem;color:#777">Generated by advscale. FLOPs are plain FLOPs;
accuracies are fractions of the evaluated images.</p>
</body></html>
"""
