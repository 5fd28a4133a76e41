"""GBR as a study tool (issue 26, item 2): held-out predictions kept in the fit record, the
importance spread over split seeds, warnings for duplicate features and for an importance that
comes from a degenerate subgroup, and the report's Figures 1b and 1c drawn from the record."""

from __future__ import annotations

import numpy as np
import pytest

from advscale.laws.fit import fit_record as fit_law

pytest.importorskip("sklearn")


def _recipe_runs(n: int = 80, tie_ema_to_swish: bool = False) -> list[dict]:
    """Runs whose accuracy grows with N and EMA; every one-step run collapses to ~0."""
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        params = int(1e7 * (1 + i % 4))
        swish = bool(i % 2)
        ema = swish if tie_ema_to_swish else bool((i // 2) % 2)
        steps = (1, 2, 5, 7, 10)[(i // 4) % 5]
        acc = 0.3 + 0.03 * (i % 4) + 0.05 * ema + rng.normal(0, 0.005)
        if steps == 1:
            acc = abs(rng.normal(0, 1e-3))
        out.append({"kind": "train.eval", "run_id": f"r{i}", "params": params,
                    "activation": "swish" if swish else "relu", "loss": "trades",
                    "pgd_steps": steps, "ema_decay": 0.995 if ema else 0.0, "final": True,
                    "robust_acc": float(acc), "samples_seen": 1000})
    return out


def test_gbr_record_keeps_held_out_predictions_and_importance_spread():
    doc = fit_law(records=_recipe_runs(), approach="gbr", target="robust_acc", n_boot=0)
    preds = doc["predictions"]
    assert len(preds) == 80 and {p["run_id"] for p in preds} == {f"r{i}" for i in range(80)}
    held = [p for p in preds if p["held_out"]]
    assert len(held) == doc["stats"]["n_test"] == 24
    a = np.array([p["actual"] for p in held])
    b = np.array([p["predicted"] for p in held])
    r2 = 1 - np.sum((a - b) ** 2) / np.sum((a - a.mean()) ** 2)
    assert r2 == pytest.approx(doc["stats"]["r2_test"])  # the held-out points ARE the test set
    spread = doc["importance_spread"]
    assert set(spread) == set(doc["feature_importances"])
    for v in spread.values():
        assert v["min"] <= v["mean"] <= v["max"] and v["std"] >= 0


def test_gbr_warns_about_duplicate_features_and_a_degenerate_subgroup():
    logs: list[str] = []
    doc = fit_law(records=_recipe_runs(tie_ema_to_swish=True), approach="gbr",
                  target="robust_acc", n_boot=0, log=logs.append)
    warns = doc["feature_warnings"]
    assert any(w.startswith("features ema and activation:") and "the same" in w
               for w in warns), warns
    deg = [w for w in warns if w.startswith("feature pgd_steps: its importance")]
    assert deg and "pgd_steps=1" in deg[0] and "16 runs at the target's floor" in deg[0]
    assert any("gbr: warning: feature pgd_steps: its importance" in m for m in logs)
    clean = fit_law(records=_recipe_runs(), approach="gbr", target="robust_acc", n_boot=0)
    assert not any(w.startswith("features ") for w in clean["feature_warnings"])


def test_report_draws_figures_1b_and_1c_from_the_fit_record(tmp_path):
    from advscale.report.page import build_report

    runs = _recipe_runs()
    doc = fit_law(records=runs, approach="gbr", target="robust_acc", n_boot=0)
    out = build_report(runs, tmp_path / "rep", laws=[doc])
    axes = out["axes"]
    b = axes["gbr_predicted_vs_actual.png"][0]
    assert b["xlabel"] == "actual robust_acc" and b["ylabel"] == "predicted robust_acc"
    assert "held out" in b["legend"] and "fitted" in b["legend"]
    c = axes["feature_importances.png"][0]
    assert c["xlabel"] == "importance (sums to 1)" and c["ylabel"] == "recipe feature"
    assert b["points"] == {"fitted": 56, "held out": 24}
    # the held-out points drawn are the fit record's: mark 5 others and the figure follows
    mine = {f"r{i}" for i in range(5)}
    doc2 = {**doc, "predictions": [{**p, "held_out": p["run_id"] in mine}
                                   for p in doc["predictions"]]}
    out2 = build_report(runs, tmp_path / "rep2", laws=[doc2])
    assert out2["axes"]["gbr_predicted_vs_actual.png"][0]["points"] == {"fitted": 75,
                                                                          "held out": 5}
