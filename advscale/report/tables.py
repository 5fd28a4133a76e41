"""The report page's tables: the runs (with data and threat model), the laws (named as the
user named them, with the figures each is drawn on) and the published runs placed on a law."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from advscale.records.rows import attack_column, run_row, threat_text
from advscale.report import quality
from advscale.report.accuracy import attack_label
from advscale.report.figures import paper_formula
from advscale.report.laws import draws
from advscale.report.metric import metric_symbol, records_metric
from advscale.report.runs import Run

RUNS_HEADERS = ("run", "model", "N (params)", "synthetic data", "dataset", "D (samples)")
"""The leading headers of the runs table (then quality, FLOPs, threat model, accuracies...)."""


def runs_metric(runs: Sequence[Run]) -> str | None:
    """The quality metric the runs' synthetic sources name (``a+b`` for several), or None."""
    return records_metric(p for r in runs for p in r.points)


def fmt(v: Any) -> str:
    """A cell: – for unknown, yes/no for booleans, 4 significant digits, thousands."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and abs(v) >= 10_000:
        return f"{v:,}"
    return html.escape(str(v))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    """An HTML table (``css`` names its class)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def runs_html(runs: Sequence[Run]) -> str:
    """One row per run: model, N, synthetic data, dataset, D, quality, FLOPs, threat model,
    accuracies (training-time evaluation and each attack), loss, cost, energy."""
    attacks = sorted({str(t.rec.get("attack")) for r in runs for t in r.attacks})
    evals = sorted({str(p.get("eval_attack")) for r in runs for p in r.points
                    if p.get("eval_attack")})
    cols = ["run_id", "model", "params", "synthetic", "dataset", "samples_seen", "fid",
            "train_flops", "threat", "clean_acc", "robust_acc",
            *[attack_column(a) for a in attacks], "adv_loss", "cost_usd", "energy_kwh",
            "energy_basis"]
    heads = [*RUNS_HEADERS, _quality_header(runs), "FLOPs", "threat model (norm, ε)",
             "clean acc", f"robust acc ({', '.join(evals) or 'eval'})",
             *[f"{attack_label(a)} acc" for a in attacks], "adv loss", "cost (USD)",
             "energy (kWh)", "energy basis"]
    rows = []
    for row in (run_row(r, attacks) for r in runs):
        row["threat"] = threat_text(row.get("norm"), row.get("eps"))
        rows.append([row.get(c) for c in cols])
    return table(heads, rows, "runs")


def _quality_header(runs: Sequence[Run]) -> str:
    """The runs table's quality column: ``FID`` for the published protocol or real data only,
    else the metric's name."""
    if not any(quality.run_quality(r) > 0 for r in runs):
        return "FID"
    return metric_symbol(runs_metric(runs))


def laws_html(named: Sequence[tuple[str, dict[str, Any]]], drawn_on: dict[str, list[str]]
              ) -> str:
    """One row per law: its name as given (a preset by its preset name, a file by its path),
    approach, target, fit statistics, parameters, the figures it is drawn on, its source."""
    rows = []
    for name, law in named:
        params = law.get("params") or law.get("feature_importances") or {}
        shown = ", ".join(f"{k}={fmt(v)}" for k, v in list(params.items())[:10])
        if draws(law, "accuracy_vs_flops") and {"C", "alpha"} <= set(params):
            percent = str(law.get("target", "")).endswith("_acc")
            shown = f"{paper_formula(params, percent)} (plain FLOPs: {shown})"
        stats = law.get("stats") or {}
        figs = drawn_on.get(name) or []
        rows.append((name, law.get("approach"), law.get("target"), law.get("n_runs"),
                     law.get("n_points"), shown, law.get("r2", stats.get("r2")),
                     law.get("rmse"),
                     ", ".join(figs) if figs else "not drawn (no figure of its kind has data, "
                     "or an earlier law of its kind is drawn there)",
                     law.get("source") or "fit record"))
    if not rows:
        return "<p>No laws given.</p>"
    return table(["law", "approach", "target", "runs", "points", "parameters", "R²", "RMSE",
                  "drawn on", "source"], rows, "laws")


def placements_html(placed: Sequence[dict[str, Any]]) -> str:
    """The published (or own) runs placed on the law, one row each (empty when none)."""
    if not placed:
        return ""
    rows = [(p["run"], p.get("params"), p.get("samples_seen"), p.get("fid"),
             p.get("train_flops"), p.get("omega_n"),
             None if p.get("compute_overhead") is None else 100 * p["compute_overhead"],
             p.get("accuracy"), p.get("reported_aa_acc"), p.get("flops_optimal_for_loss"),
             p.get("why", "")) for p in placed]
    return "<h2>Published runs on the law</h2>" + table(
        ["run", "N", "D", "FID", "FLOPs", "N/N*", "overhead (%)", "predicted accuracy",
         "reported AA", "FLOPs optimal for its loss", "not placed because"], rows)
