"""`predict --target-accuracy/--target-loss`: the least FLOPs reaching a target, for every law
form, round-tripped through the forward prediction; unreachable targets; clipping,
extrapolation and degenerate laws (issue 16, item 4)."""

from __future__ import annotations

import math

import pytest

from advscale.errors import AdvscaleError
from advscale.laws.fit import fit_law
from advscale.laws.law import Law
from advscale.laws.predict import predict_one
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs

A2 = PRESETS["bartoldson2024-approach2-rounded"]["params"]
APPROACH1 = {"kind": "fit", "name": "a1", "form": "approach1", "target": "adv_loss",
             "quantity": "loss", "params": {"k_L": 20.0, "s": -0.05, "k_N": 3e-3, "a": 0.5,
                                            "k_D": 40.0, "b": 0.5}}
POWER_LOSS = {"kind": "fit", "name": "pl-loss", "form": "power-law", "target": "adv_loss",
              "quantity": "loss", "params": {"C": 5.0, "alpha": -0.02}}


def _law(spec):
    return Law.load(spec) if isinstance(spec, str) else Law(dict(spec))


def _forward(law, flops, fid):
    """The forward value at a budget: the optimum for laws of N, D; the law of FLOPs else."""
    rec = predict_one(law, {"flops": flops, "fid": fid}, accuracy=law.quantity == "loss")
    qn = law.quantity
    key = f"{qn}_opt" if f"{qn}_opt" in rec else qn
    acc_key = "accuracy_opt" if "accuracy_opt" in rec else "accuracy"
    return rec[key], rec.get(acc_key)


@pytest.mark.parametrize(("spec", "fid", "accs", "losses"), [
    ("bartoldson2024-approach2", 1.76, [0.6, 0.7, 0.8], [0.9, 0.7]),
    ("bartoldson2024-approach3", 1.76, [0.6, 0.7, 0.75], [0.9, 0.7]),
    ("bartoldson2024-approach2-rounded", 0.0, [0.55, 0.85], [0.6]),
    ("debenedetti2024", 0.0, [0.5, 0.6, 0.7], []),
    (APPROACH1, 0.0, [0.4, 0.6], [1.2, 0.9]),
    (POWER_LOSS, 0.0, [], [2.0, 1.5]),
])
def test_inverse_round_trips_to_1e6(spec, fid, accs, losses):
    """Forward at the answer's FLOPs gives the target back (relative 1e-6), with N*, D*."""
    law = _law(spec)
    for acc in accs:
        rec = predict_one(law, {"target_accuracy": acc, "fid": fid})
        assert rec["reachable"] is True, rec
        flops = rec["flops_needed"]
        assert flops > 0 and rec["query"]["target_accuracy"] == acc
        _, acc_back = _forward(law, flops, fid)
        assert acc_back == pytest.approx(acc, rel=1e-6)
        if law.supports("optimal"):
            assert rec["n_opt"] * rec["d_opt"] > 1
    for loss in losses:
        rec = predict_one(law, {"target_loss": loss, "fid": fid})
        assert rec["reachable"] is True, rec
        value, _ = _forward(law, rec["flops_needed"], fid)
        assert value == pytest.approx(loss, rel=1e-6)


def test_inverse_is_the_least_budget():
    """Just below the answer's FLOPs the target is not yet reached."""
    law = Law.load("bartoldson2024-approach3")
    rec = predict_one(law, {"target_loss": 0.8, "fid": 1.76})
    below, _ = _forward(law, rec["flops_needed"] * 0.999, 1.76)
    assert below > 0.8


@pytest.mark.parametrize("spec", ["bartoldson2024-approach2", "bartoldson2024-approach3"])
def test_unreachable_above_the_asymptote(spec):
    law = Law.load(spec)
    inf = float(law.asymptote(1.76))
    rec = predict_one(law, {"target_loss": inf * 0.999, "fid": 1.76})
    assert rec["reachable"] is False and rec["flops_needed"] is None
    assert rec["loss_inf"] == pytest.approx(inf) and "asymptote" in rec["note"]
    assert "n_opt" not in rec
    acc_inf = float(law.to_accuracy(inf))
    rec = predict_one(law, {"target_accuracy": acc_inf + 0.01, "fid": 1.76})
    assert rec["reachable"] is False and f"accuracy {acc_inf:.4g}" in rec["note"]
    # just inside the asymptote: reachable, at a large budget
    rec = predict_one(law, {"target_loss": inf * 1.01, "fid": 1.76})
    assert rec["reachable"] is True and rec["flops_needed"] > 1e20


def test_power_law_moving_away_is_unreachable():
    law = Law({**POWER_LOSS, "params": {"C": 5.0, "alpha": 0.01}})  # loss growing with FLOPs
    rec = predict_one(law, {"target_loss": 2.0})
    assert rec["reachable"] is False and "does not move toward it" in rec["note"]


def test_inverse_refusals():
    law = Law.load("debenedetti2024")
    with pytest.raises(AdvscaleError, match="fits accuracy, not a loss"):
        predict_one(law, {"target_loss": 0.5})
    with pytest.raises(AdvscaleError, match="not a fraction"):
        predict_one(law, {"target_accuracy": 55.0})
    with pytest.raises(AdvscaleError, match="alone"):
        predict_one(law, {"target_accuracy": 0.5, "flops": 1e18})


def test_accuracies_are_clipped_with_a_flag():
    law = Law.load("debenedetti2024")
    rec = predict_one(law, {"flops": 1e80})
    assert rec["accuracy"] == 1.0 and rec["accuracy_clipped"] == ["accuracy"]
    law = Law.load("bartoldson2024-approach2")
    rec = predict_one(law, {"n": 1e3, "d": 1e3}, accuracy=True)  # a huge loss: accuracy < 0
    assert rec["accuracy"] == 0.0 and "accuracy" in rec["accuracy_clipped"]
    assert "accuracy_clipped" not in predict_one(law, {"n": 1e8, "d": 1e8}, accuracy=True)


def test_extrapolation_against_the_fitted_ranges():
    recs = simulate_runs(A2, n_values=[6e6, 2e7, 6e7], d_values=[5e6, 2e7, 5e7],
                         fids=[1.0, 4.0], noise=0.002, seed=1)
    law = Law({"kind": "fit", "name": "sim", **fit_law(records=recs, approach="2", n_boot=0,
                                                       exclusion=False, full_grid=False)})
    assert law.ranges()["params"] == [6e6, 6e7]
    assert law.doc["data"]["flops_range"][0] == pytest.approx(7822 * 6e6 * 5e6)
    inside = predict_one(law, {"n": 2e7, "d": 2e7, "fid": 1.0})
    assert inside["extrapolation"] == {"params": 1.0, "samples": 1.0, "flops": 1.0}
    assert "extrapolation_warning" not in inside
    far = predict_one(law, {"flops": 1e25, "fid": 1.0})
    ext = far["extrapolation"]
    assert ext["flops"] == pytest.approx(1e25 / (7822 * 6e7 * 5e7))
    assert ext["params"] == pytest.approx(far["n_opt"] / 6e7)
    assert far["extrapolation_warning"].startswith("warning: extrapolating: params")
    assert predict_one(Law.load("bartoldson2024-approach2"), {"flops": 1e25})[
        "extrapolation"] is None


def test_degenerate_optimum_is_not_a_number():
    params = {**A2, "A": 1e-9}  # a model term of nothing: N* collapses below one parameter
    law = Law({"kind": "fit", "name": "odd", "form": "approach2", "params": params})
    rec = predict_one(law, {"flops": 1e15})
    assert rec["n_opt"] is None and rec["d_opt"] is None
    assert "degenerate" in rec["degenerate"] and "N* = " in rec["degenerate"]
    assert math.isfinite(rec["loss_opt"])
