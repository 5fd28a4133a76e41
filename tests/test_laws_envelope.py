"""Approach 1 (envelope of training curves), the Debenedetti power law and the GBR predictor."""

from __future__ import annotations

import numpy as np
import pytest

from advscale.errors import AdvscaleError
from advscale.laws import approach1, powerlaw
from advscale.laws.fit import fit_law
from advscale.laws.law import Law
from advscale.laws.predict import predict_one
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs
from advscale.records import make_record

A2 = PRESETS["bartoldson2024-approach2-rounded"]["params"]


def test_envelope_keeps_only_improvements():
    c1 = approach1.Curve(0, 1e6, np.array([1e10, 1e11, 1e12]), np.array([1e3, 1e4, 1e5]),
                         np.array([1.0, 0.5, 0.6]))  # overfits: loss rises after 1e11
    c2 = approach1.Curve(1, 1e7, np.array([3e11, 3e12]), np.array([3e3, 3e4]),
                         np.array([0.9, 0.4]))
    env = approach1.envelope([c1, c2], lower_is_better=True, n_query=200)
    assert np.all(np.diff(env.value) <= 0)  # upticks removed
    assert env.flops[0] == pytest.approx(1e10) and env.flops[-1] == pytest.approx(3e12)
    assert set(env.n) == {1e6, 1e7}
    # at 1e11 the small model is best, at 3e12 the large one
    assert env.n[np.argmin(np.abs(np.log(env.flops / 1e11)))] == 1e6
    assert env.n[-1] == 1e7 and env.d[-1] == pytest.approx(3e4)
    acc = approach1.envelope([c1, c2], lower_is_better=False, n_query=50)
    assert np.all(np.diff(acc.value) >= 0)


def test_approach1_recovers_compute_optimal_exponents():
    """Dense curves from an Approach 2 law: the envelope's N* ~ F^a matches Eq. 4's a."""
    recs = simulate_runs(A2, n_values=np.geomspace(1e6, 1e9, 12), d_values=[1e10],
                         fids=[1.76], noise=0.0, curve_points=20, curve_start=1e-4)
    out = fit_law(records=recs, approach="1", n_boot=30)
    a_eq4 = 0.23 / 0.47
    assert out["params"]["a"] == pytest.approx(a_eq4, abs=0.02)
    assert out["params"]["a"] + out["params"]["b"] == pytest.approx(1.0, abs=1e-6)
    assert out["stats"]["r2_N"] > 0.98 and out["points"] == "all"
    assert out["bootstrap"]["ok"] == 30
    # predict: N*, D* and L* at a budget; N*·D*·k = F since a + b = 1 and k_N·k_D = 1/k
    law = Law(out)
    n, d, loss = law.optimal(1e21)
    assert 7822 * n * d == pytest.approx(1e21, rel=1e-3)
    truth_loss = float(Law(PRESETS["bartoldson2024-approach2-rounded"]).optimal(1e21, 1.76)[2])
    assert loss == pytest.approx(truth_loss, rel=0.02)


def test_approach1_refuses_mixed_datasets_and_single_models():
    recs = simulate_runs(A2, n_values=[1e7, 1e8], d_values=[1e8], fids=[1.0, 5.0],
                         curve_points=5)
    with pytest.raises(AdvscaleError, match="one dataset at a time.*filters 'FID == 1'"):
        fit_law(records=recs, approach="1", n_boot=0)
    recs = simulate_runs(A2, n_values=[1e7], d_values=[1e7, 1e8], fids=[1.0], curve_points=5)
    with pytest.raises(AdvscaleError, match="at least 2 distinct model sizes on the envelope"):
        fit_law(records=recs, approach="1", n_boot=0)


def _runs_with_accuracy(c=0.2, alpha=0.02, n=60, seed=0):
    """train.eval + aa attack records: the best run per FLOPs range has acc = c·F^α exactly."""
    rng = np.random.default_rng(seed)
    flops = np.geomspace(1e15, 1e19, n)
    recs = []
    for i, f in enumerate(flops):
        best = c * f ** alpha
        acc = best if i % 3 == 0 else best * rng.uniform(0.7, 0.97)
        rid = f"run{i}"
        recs.append(make_record("train.eval", {
            "run_id": rid, "params": 1e6 * (1 + i % 5), "samples_seen": f / 1e7, "fid": None,
            "train_flops": f, "robust_acc": acc + 0.01, "adv_loss": 1.0, "final": True,
            "activation": ["relu", "gelu"][i % 2], "loss": ["trades", "pgd-at"][i % 2],
            "pgd_steps": [1, 2, 5, 7, 10][i % 5], "ema_decay": 0.995 if i % 4 else None,
            "data": []}, command="t", check=False))
        recs.append(make_record("attack", {
            "run_id": rid, "params": 1e6 * (1 + i % 5), "samples_seen": f / 1e7,
            "attack": "aa-standard", "robust_acc": acc}, command="t", check=False))
        # as `advscale energy -- advscale train` writes it: after the run, without a run_id
        recs.append(make_record("energy", {"cost_usd": 3e-9 * f ** 0.95}, command="t",
                                check=False))
    return recs


def test_power_law_on_best_per_bin_with_cost():
    recs = _runs_with_accuracy()
    out = fit_law(records=recs, approach="power-law", also=["cost_usd"], n_boot=50)
    assert out["target"] == "aa_acc" and out["quantity"] == "accuracy"
    assert out["stats"]["bins"] == 19 and 3 <= out["stats"]["bins_used"] <= 19
    assert out["params"]["alpha"] == pytest.approx(0.02, rel=0.02)
    assert out["params"]["C"] == pytest.approx(0.2, rel=0.05)
    assert out["stats"]["r2"] > 0.99
    cost = out["also"]["cost_usd"]
    assert cost["alpha"] == pytest.approx(0.95, rel=1e-6) and cost["r2"] == pytest.approx(1.0)
    law = Law(out)
    pred = predict_one(law, {"flops": 1e18})
    assert pred["accuracy"] == pytest.approx(0.2 * 1e18 ** 0.02, rel=0.01)
    assert pred["cost_usd"] == pytest.approx(3e-9 * 1e18 ** 0.95, rel=1e-6)
    assert pred["bands"]["accuracy"][0] <= pred["accuracy"] <= pred["bands"]["accuracy"][1]


def test_power_law_bins_are_log_spaced():
    f = np.geomspace(1e15, 1e19, 1000)
    v = np.ones_like(f)
    sel = powerlaw.best_per_bin(f, v, 19)
    assert sel.size == 19
    edges = np.geomspace(1e15, 1e19, 20)
    assert np.all((f[sel] >= edges[:-1]) & (f[sel] <= edges[1:]))


def test_gbr_ranks_the_features_that_matter():
    rng = np.random.default_rng(0)
    recs = []
    for i in range(80):
        params = float(rng.choice([1e6, 4e6, 16e6, 64e6]))
        synthetic = bool(i % 2)
        acc = 0.3 + 0.03 * np.log2(params / 1e6) + (0.1 if synthetic else 0.0)
        acc += rng.normal(0, 0.005)
        recs.append(make_record("train.eval", {
            "run_id": f"g{i}", "params": params, "samples_seen": 1e6, "final": True,
            "fid": 3.0 if synthetic else None, "robust_acc": acc,
            "activation": ["relu", "gelu"][(i // 2) % 2], "loss": "trades",
            "pgd_steps": [1, 10][(i // 4) % 2], "ema_decay": 0.995}, command="t", check=False))
    out = fit_law(records=recs, approach="gbr", target="robust_acc", n_boot=0)
    imp = out["feature_importances"]
    assert set(imp) == {"params", "synthetic", "activation", "loss", "pgd_steps", "ema"}
    assert sum(imp.values()) == pytest.approx(1.0)
    assert imp["params"] + imp["synthetic"] > 0.9
    st = out["stats"]
    assert st["n_train"] == 56 and st["n_test"] == 24 and st["r2_test"] > 0.9
    with pytest.raises(AdvscaleError, match="not a law to predict"):
        Law(out)
