"""`fit` on records imported from results tables (issue 16, item 3): the power law asks only
for the fields it uses, `--bins`, `--x`, unknown filter fields, zero and percent targets, GBR's
feature warnings and split seeds."""

from __future__ import annotations

import numpy as np
import pytest

from advscale.errors import AdvscaleError
from advscale.laws.fit import fit_law
from advscale.laws.law import Law
from advscale.laws.predict import predict_one


def _table_runs(n=24, acc=None, seed=0):
    """train.eval records as a results table gives them: FLOPs and an accuracy, no N or D."""
    rng = np.random.default_rng(seed)
    flops = np.geomspace(1e15, 1e19, n)
    accs = 0.5 * (flops / 1e12) ** 0.02 * np.exp(rng.normal(0, 0.01, n)) if acc is None else acc
    recs = []
    for i, (f, a) in enumerate(zip(flops, accs, strict=True)):
        recs.append({"kind": "train.eval", "run_id": f"row{i}", "model": f"m{i % 4}",
                     "train_flops": float(f), "robust_acc": float(a), "final": True})
        recs.append({"kind": "energy", "run_id": f"row{i}", "cost_usd": 1e-16 * float(f)})
    return recs


def test_power_law_needs_neither_params_nor_samples():
    doc = fit_law(records=_table_runs(), approach="power-law", target="robust_acc", n_boot=0)
    assert doc["params"]["alpha"] == pytest.approx(0.02, abs=0.005)
    assert doc["x"] == "train_flops" and doc["stats"]["bins"] == 19
    assert doc["data"]["params_range"] is None and doc["data"]["flops_range"] == [1e15, 1e19]


def test_bins_and_x():
    doc = fit_law(records=_table_runs(), approach="power-law", target="robust_acc", n_boot=0,
                  bins=5)
    assert doc["stats"]["bins"] == 5 and doc["stats"]["bins_used"] == 5
    doc = fit_law(records=_table_runs(), approach="power-law", target="robust_acc", n_boot=0,
                  x="cost_usd")
    assert doc["x"] == "cost_usd" and doc["x_range"] == pytest.approx([0.1, 1000.0])
    law = Law({"kind": "fit", "name": "cost", **doc})
    rec = predict_one(law, {"x": 10.0})
    assert rec["x"] == "cost_usd" and rec["query"] == {"fid": 0.0, "x": 10.0}
    assert rec["accuracy"] == pytest.approx(doc["params"]["C"] * 10 ** doc["params"]["alpha"])
    assert rec["extrapolation"] == {"flops": 1.0}
    with pytest.raises(AdvscaleError, match="give x"):
        predict_one(law, {"flops": 1e18})
    back = predict_one(law, {"target_accuracy": rec["accuracy"]})
    assert back["flops_needed"] == pytest.approx(10.0, rel=1e-9)
    with pytest.raises(AdvscaleError, match="bins applies to approach power-law, not 2"):
        fit_law(records=_table_runs(), approach="2", bins=5)
    with pytest.raises(AdvscaleError, match="x no_such: no point's record"):
        fit_law(records=_table_runs(), approach="power-law", target="robust_acc", x="no_such")


@pytest.mark.parametrize("order", ["after", "before"])
def test_unknown_filter_field_is_named(order):
    with pytest.raises(AdvscaleError, match=r"unknown field parms .*did you mean params"):
        fit_law(records=[{**r, "params": 1000} for r in _table_runs()], approach="power-law",
                target="robust_acc", filters=["parms > 1"],
                protocol_options={"filter_order": order})
    # a field some records lack is fine (null there: the comparison is false)
    recs = _table_runs()
    recs[0]["lr"] = 0.1
    with pytest.raises(AdvscaleError) as e:
        fit_law(records=recs, approach="power-law", target="robust_acc", filters=["lr > 0"])
    assert "unknown field" not in str(e.value) and "at least 3 FLOPs bins" in str(e.value)


def test_zero_targets_counted_with_a_hint():
    acc = 0.5 * (np.geomspace(1e15, 1e19, 24) / 1e12) ** 0.02
    acc[:5] = 0.0
    with pytest.raises(AdvscaleError, match=r"5 of 24 points have robust_acc <= 0 .*"
                                            r"filters 'robust_acc > 0'"):
        fit_law(records=_table_runs(acc=acc), approach="power-law", target="robust_acc")
    doc = fit_law(records=_table_runs(acc=acc), approach="power-law", target="robust_acc",
                  filters=["robust_acc > 0"], n_boot=0)
    assert doc["n_runs"] == 19


def test_percent_accuracies_are_refused_in_one_line():
    acc = 50 * (np.geomspace(1e15, 1e19, 24) / 1e12) ** 0.02
    with pytest.raises(AdvscaleError, match=r"24 of 24 values exceed 1 .*percents.*divide"):
        fit_law(records=_table_runs(acc=acc), approach="power-law", target="robust_acc")


def _gbr_runs(n=30):
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        rec = {"kind": "train.eval", "run_id": f"g{i}", "params": int(1e6 * (1 + i % 6)),
               "loss": "trades" if i % 2 else "pgd-at", "pgd_steps": 10, "final": True,
               "robust_acc": float(0.3 + 0.02 * (i % 6) + rng.normal(0, 0.01)),
               "samples_seen": 1000}
        if i % 3:
            rec["activation"] = "relu"
        out.append(rec)
    return out


def test_gbr_warns_about_missing_and_constant_features_and_reports_split_seeds():
    pytest.importorskip("sklearn")
    logs: list[str] = []
    doc = fit_law(records=_gbr_runs(), approach="gbr", target="robust_acc", n_boot=0,
                  log=logs.append)
    warns = doc["feature_warnings"]
    assert "feature activation: missing in 10 of 30 runs (filled with 'unknown')" in warns
    assert any(w.startswith("feature pgd_steps: constant (10)") for w in warns)
    assert any(w.startswith("feature ema: missing in 30 of 30 runs") for w in warns)
    assert any("gbr: warning: feature activation" in m for m in logs)
    seeds = doc["stats"]["r2_test_seeds"]
    assert len(seeds["values"]) == 10 and seeds["seeds"][0] == 0
    assert seeds["min"] <= seeds["mean"] <= seeds["max"]
    assert seeds["values"][0] == pytest.approx(doc["stats"]["r2_test"])
    assert any("over 10 split seeds mean" in m for m in logs)
