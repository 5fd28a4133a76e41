"""Recovery: records simulated from known Approach 2 and 3 laws are fitted back.

The truths are the papers' published constants; noise is log-normal (σ = 0.2%). Each fit uses
the full appendix-F grid, the tight polish and a 300-replicate bootstrap over runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from advscale.laws import approach2, approach3
from advscale.laws.fit import fit_law
from advscale.laws.law import Law
from advscale.laws.objective import Design, Problem
from advscale.laws.predict import predict_one
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs

A2 = PRESETS["bartoldson2024-approach2-rounded"]["params"]
A3 = PRESETS["bartoldson2024-approach3-rounded"]["params"]
NS = [6e6, 1.2e7, 2.5e7, 5e7, 1e8, 2e8, 3.2e8]


@pytest.fixture(scope="module")
def fit2():
    recs = simulate_runs(A2, n_values=NS, d_values=[5e6, 1e7, 2e7, 5e7, 1e8],
                         fids=[0.0, 1.76, 5.0, 10.0], noise=0.002, seed=0)
    return recs, fit_law(records=recs, approach="2", exclusion=False, n_boot=300, seed=0)


@pytest.fixture(scope="module")
def fit3():
    recs = simulate_runs(A3, form="approach3", n_values=NS, d_values=[5e6, 1e7, 3e7, 1e8, 3e8],
                         fids=[1.65, 2.5, 5.0, 10.0, 35.0], noise=0.002, seed=0)
    return recs, fit_law(records=recs, approach="3", exclusion=False, n_boot=300, seed=0)


def _objective(form, recs, params):
    x = Design([r["params"] for r in recs], [r["samples_seen"] for r in recs],
               [r["fid"] or 0.0 for r in recs], [r["adv_loss"] for r in recs])
    return Problem.all_free(form, x).objective(form.from_public(params))


def test_approach2_recovers_the_truth(fit2):
    recs, out = fit2
    p = out["params"]
    assert out["form"] == "approach2" and out["at_bound"] == [] and out["fixed"] == []
    for k, tol in {"E": 0.02, "alpha": 0.06, "beta": 0.06, "epsilon": 0.05, "zeta": 0.05,
                   "A": 0.25, "B": 0.25}.items():
        assert p[k] == pytest.approx(A2[k], rel=tol), k
    assert out["derived"]["a"] == pytest.approx(0.23 / 0.47, abs=0.02)
    # the fitted law predicts the noiseless truth over the data's range to 0.2%
    law = Law(out)
    n, d = np.meshgrid(NS, [5e6, 2e7, 1e8])
    for fid in (0.0, 1.76, 10.0):
        truth = approach2.predict_loss(A2, n, d, fid)
        assert np.max(np.abs(law.value(n, d, fid) / truth - 1)) < 2e-3
    # a true optimum: no worse than the truth's own objective on the same data
    assert out["objective"] <= _objective(approach2.FORM, recs, A2)
    assert out["stats"]["r2"] > 0.999 and out["stats"]["oob_r2"] > 0.999


def test_approach2_bootstrap_intervals_cover_the_truth(fit2):
    _, out = fit2
    boot = out["bootstrap"]
    assert boot["b"] == 300 and boot["ok"] == 300 and boot["level"] == 0.95
    assert len(boot["samples"]) == 300 and boot["names"] == list(approach2.PUBLIC)
    for k, v in A2.items():
        lo, hi = boot["intervals"][k]
        assert lo <= v <= hi, (k, lo, v, hi)
        assert lo < out["params"][k] < hi
    a_true = 0.23 / 0.47
    assert boot["intervals"]["a"][0] <= a_true <= boot["intervals"]["a"][1]


def test_approach3_recovers_the_truth(fit3):
    recs, out = fit3
    p = out["params"]
    assert out["form"] == "approach3" and out["at_bound"] == []
    # A and α (like B and β) trade off against each other over the data's range: their
    # combination, the predicted loss, is recovered far more tightly (below)
    for k, tol in {"E": 0.02, "Q": 0.03, "kappa": 0.03, "epsilon": 0.08, "alpha": 0.08,
                   "beta": 0.06, "A": 0.25, "B": 0.25}.items():
        assert p[k] == pytest.approx(A3[k], rel=tol), k
    law = Law(out)
    n, d = np.meshgrid(NS, [5e6, 3e7, 3e8])
    for fid in (1.65, 5.0, 35.0):
        truth = approach3.predict_loss(A3, n, d, fid)
        assert np.max(np.abs(law.value(n, d, fid) / truth - 1)) < 2e-3
    assert out["objective"] <= _objective(approach3.FORM, recs, A3)


def test_approach3_bootstrap_intervals_cover_the_truth(fit3):
    _, out = fit3
    boot = out["bootstrap"]
    assert boot["ok"] == 300
    for k, v in A3.items():
        lo, hi = boot["intervals"][k]
        assert lo <= v <= hi, (k, lo, v, hi)


def test_single_fid_fixes_quality_terms():
    recs = simulate_runs(A2, n_values=NS[::2], d_values=[5e6, 1e7, 2e7, 5e7, 1e8], fids=[2.0],
                         noise=0.001, seed=3)
    out = fit_law(records=recs, approach="2", exclusion=False, n_boot=20, full_grid=False)
    assert out["fixed"] == ["epsilon", "zeta"]
    assert out["params"]["epsilon"] == 0.0 and out["params"]["zeta"] == 0.0
    # E then absorbs the quality factor at the data's FID: E' = E (1 + FID)^ε
    assert out["params"]["E"] == pytest.approx(A2["E"] * 3.0 ** A2["epsilon"], rel=0.02)
    law = Law(out)
    assert "note" not in predict_one(law, {"n": 1e7, "d": 1e7, "fid": 2.0})
    assert "one FID (2)" in predict_one(law, {"n": 1e7, "d": 1e7, "fid": 0.0})["note"]


def test_accuracy_target_fits_the_error_rate():
    recs = simulate_runs(A2, n_values=NS, d_values=[5e6, 1e7, 2e7, 5e7, 1e8],
                         fids=[1.0, 5.0], noise=0.001, seed=4)
    out = fit_law(records=recs, approach="2", target="robust_acc", exclusion=False, n_boot=0,
                  full_grid=False)
    assert out["quantity"] == "error" and out["loss_to_accuracy"] is None
    law = Law(out)
    rec = recs[17]
    pred = float(law.to_accuracy(law.value(rec["params"], rec["samples_seen"], rec["fid"])))
    assert pred == pytest.approx(rec["robust_acc"], abs=0.01)


def test_loss_to_accuracy_regression_is_fitted_from_records(fit2):
    _, out = fit2
    m = out["loss_to_accuracy"]
    # the simulator writes robust_acc = 1.2575 - 0.7496 * adv_loss exactly
    assert m["slope"] == pytest.approx(-0.7496, abs=1e-6)
    assert m["intercept"] == pytest.approx(1.2575, abs=1e-6)
    assert m["n"] == 140
