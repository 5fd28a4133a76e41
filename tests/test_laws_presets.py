"""The papers' published laws as presets: Table 3 of Bartoldson et al. (2024) and friends.

The default presets hold the constants the authors' notebook prints (bbartoldson/
Adversarial-Robustness-Limits, Scaling_law_fitting_and_plots.ipynb); the tests below pin that
they reproduce its printed outputs to the printed precision and Table 3 to its two decimals.
The ``-rounded`` presets hold the paper's rounded constants; where those miss a Table 3 entry
the miss is rounding, and the test pins the formula's value. What remains inconsistent in the
paper itself is marked "paper:" (docs/laws.md lists it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from advscale.errors import AdvscaleError
from advscale.laws import approach2, approach3
from advscale.laws.law import Law
from advscale.laws.optimal import optimal_numeric, tradeoff_numeric
from advscale.laws.predict import predict_one
from advscale.laws.presets import (
    NOTEBOOK_ACCURACY_MAP,
    NOTEBOOK_APPROACH2,
    NOTEBOOK_APPROACH2_AB,
    NOTEBOOK_APPROACH3,
    PRESETS,
    preset,
)


@pytest.fixture(scope="module")
def a2() -> Law:
    return Law(preset("bartoldson2024-approach2-rounded"))


@pytest.fixture(scope="module")
def a3() -> Law:
    return Law(preset("bartoldson2024-approach3-rounded"))


@pytest.fixture(scope="module")
def nb2() -> Law:
    return Law(preset("bartoldson2024-approach2"))


@pytest.fixture(scope="module")
def nb3() -> Law:
    return Law(preset("bartoldson2024-approach3"))


# -- the notebook's printed outputs -----------------------------------------------------------
def test_approach2_preset_is_the_notebooks_cell7_rescaled_to_fid0(nb2):
    """Cell 7 prints A, B, E, α, β (B, E at DG's FID 1.65), ε, ζ and (a, b)."""
    printed = NOTEBOOK_APPROACH2
    p = nb2.params
    assert p["A"] == printed["A"] and p["alpha"] == printed["alpha"]
    assert p["epsilon"] == printed["epsilon"] and p["zeta"] == printed["zeta"]
    # the notebook's FID_with_base_modifier(param, q, FID=0, log_first=True)
    u0 = math.log(1 + 1.65)
    assert p["B"] == pytest.approx(math.exp(math.log(printed["B"]) - u0 * printed["zeta"]),
                                   rel=1e-15)
    assert p["E"] == pytest.approx(math.exp(math.log(printed["E"]) - u0 * printed["epsilon"]),
                                   rel=1e-15)
    assert round(p["B"], 2) == 9.89 and round(p["E"], 2) == 0.48  # appendix F.2.1
    # at DG's own FID the law gives back the printed B and E
    assert float(nb2.asymptote(1.65)) == pytest.approx(printed["E"], rel=1e-14)
    doc = preset("bartoldson2024-approach2")
    assert doc["anchoring"]["base_fid"] == 1.65
    assert doc["anchoring"]["params_at_base_fid"] == printed
    # the printed exponents, to the printed precision (16 digits)
    der = approach2.derived(p)
    assert der["a"] == pytest.approx(NOTEBOOK_APPROACH2_AB[0], rel=1e-15)
    assert der["b"] == pytest.approx(NOTEBOOK_APPROACH2_AB[1], rel=1e-15)
    out = predict_one(nb2, {"flops": 1e25, "fid": 1.76})
    assert out["a"] == pytest.approx(0.48285756085236076, rel=1e-15)
    assert out["b"] == pytest.approx(0.5171424391476392, rel=1e-15)


@pytest.mark.parametrize(("fid", "printed"), [(6.7908, 0.7531463613146835),
                                              (1.65, 0.8285778530148242),
                                              (0.0, 0.8863254780257899)])
def test_approach2_accuracy_at_1e30_flops_as_cell13_prints(nb2, fid, printed):
    """Cell 13 prints max(acc_pred) over budgets up to 1e30 FLOPs for EDM-7, DG and FID 0."""
    out = predict_one(nb2, {"flops": 1e30, "fid": fid}, accuracy=True)
    assert out["accuracy_opt"] == pytest.approx(printed, abs=5e-16 * 4)


def test_approach2_accuracy_asymptote_as_cell13_prints(nb2):
    """Cell 13 prints the FID-0 asymptote's accuracy 0.8965242471325952 (Figure 1's ~90%)."""
    out = predict_one(nb2, {"n": 1e8, "d": 1e8, "fid": 0.0}, accuracy=True)
    assert out["accuracy_inf"] == pytest.approx(0.8965242471325952, abs=2e-15)
    m = NOTEBOOK_ACCURACY_MAP
    assert round(m["slope"], 4) == -0.7496 and round(m["intercept"], 4) == 1.2575


def test_approach3_preset_is_the_notebooks_cell9(nb3):
    assert nb3.params == NOTEBOOK_APPROACH3
    der = approach3.derived(nb3.params)
    assert round(der["a"], 2) == 0.47 and round(der["b"], 2) == 0.53  # Table 3, FID 0
    assert round(der["B_pow_beta"], 2) == 6.85  # appendix F.3.1's B^β
    out = predict_one(nb3, {"flops": 1e25, "fid": 0.0})
    assert out["a"] == pytest.approx(der["a"]) and out["a_local"] == pytest.approx(
        der["a"], abs=1e-6)


def test_table3_from_the_notebooks_constants(nb2, nb3):
    """Every Table 3 entry of Approaches 2 and 3, to the table's two decimals."""
    _, _, l2 = nb2.optimal(1e25, 1.76)
    _, _, l2_0 = nb2.optimal(1e25, 0.0)
    assert (round(l2, 2), round(float(nb2.asymptote(1.76)), 2)) == (0.61, 0.56)
    assert (round(l2_0, 2), round(float(nb2.asymptote(0.0)), 2)) == (0.53, 0.48)
    _, _, l3 = nb3.optimal(1e25, 1.76)
    _, _, l3_0 = nb3.optimal(1e25, 0.0)
    p = nb3.params
    e_prime = p["E"] + p["epsilon"] * math.log(1 + 1.76)
    assert (round(l3, 2), round(e_prime, 2)) == (0.63, 0.55)
    assert (round(l3_0, 2), round(p["E"], 2)) == (0.56, 0.52)
    assert l3 == pytest.approx(0.63357, abs=1e-4) and l3_0 == pytest.approx(0.56429, abs=1e-4)


def test_approach3_local_exponents_drift_at_fid_above_0(nb3):
    """At FID 1.76 additional compute goes mostly to N: the local a exceeds Table 3's 0.47."""
    out = predict_one(nb3, {"flops": 1e25, "fid": 1.76})
    assert out["a_local"] + out["b_local"] == pytest.approx(1.0, abs=1e-9)
    assert out["a_local"] > 0.7
    n1, _, _ = nb3.optimal(1e25 * math.exp(-1e-3), 1.76)
    n2, _, _ = nb3.optimal(1e25 * math.exp(1e-3), 1.76)
    assert out["a_local"] == pytest.approx(math.log(n2 / n1) / 2e-3, rel=1e-3)


# -- the paper's rounded constants ------------------------------------------------------------


def test_approach2_table3_pfgm_fid_1_76(a2):
    # E' at FID 1.76: Table 3 says 0.56
    e_prime = float(a2.asymptote(1.76))
    assert e_prime == pytest.approx(0.48 * 2.76 ** 0.16, rel=1e-12)
    assert round(e_prime, 2) == 0.56
    # L* at 1e25 FLOPs: Table 3 says 0.61
    n, d, loss = a2.optimal(1e25, 1.76)
    assert round(loss, 2) == 0.61
    assert loss == pytest.approx(0.61155, abs=1e-4)
    assert 7822 * n * d == pytest.approx(1e25, rel=1e-9)


def test_approach2_table3_ideal_data_fid_0(a2):
    assert float(a2.asymptote(0.0)) == pytest.approx(0.48)
    n, d, loss = a2.optimal(1e25, 0.0)
    assert round(loss, 2) == 0.53  # Table 3
    assert loss == pytest.approx(0.53422, abs=1e-4)


def test_approach2_rounded_exponents_miss_table3_by_rounding(a2):
    """Table 3 gives a = 0.48, b = 0.52; Eq. 4 with the rounded α = 0.24, β = 0.23 gives
    0.489/0.511. Rounding: the notebook's unrounded constants give 0.4829/0.5171 (above)."""
    der = approach2.derived(a2.params)
    assert der["a"] == pytest.approx(0.23 / 0.47) and der["b"] == pytest.approx(0.24 / 0.47)
    assert round(der["a"], 2) == 0.49 and round(der["b"], 2) == 0.51
    lo = 0.225 / (0.245 + 0.225)
    hi = 0.235 / (0.235 + 0.235)
    assert lo < 0.48 < hi  # Table 3's a is reachable within the constants' rounding
    # N* really scales as FLOPs^a, D* as FLOPs^b
    n1, d1, _ = a2.optimal(1e22, 1.76)
    n2, d2, _ = a2.optimal(1e24, 1.76)
    assert math.log(n2 / n1) / math.log(100) == pytest.approx(der["a"], rel=1e-9)
    assert math.log(d2 / d1) / math.log(100) == pytest.approx(der["b"], rel=1e-9)


def test_approach2_accuracy_plateau_near_90_percent(a2):
    """Figure 1: with FID = 0 data and N, D → ∞, accuracy tends to 1.2575 − 0.7496·E ≈ 90%."""
    acc_inf = float(a2.to_accuracy(a2.asymptote(0.0)))
    assert acc_inf == pytest.approx(1.2575 - 0.7496 * 0.48)
    assert round(acc_inf, 2) == 0.90
    out = predict_one(a2, {"n": 1e15, "d": 1e18, "fid": 0}, accuracy=True)
    assert out["accuracy"] == pytest.approx(acc_inf, abs=2e-3)
    assert out["accuracy_inf"] == pytest.approx(acc_inf)


def test_approach2_numeric_optimum_and_eq6_agree_with_analytic(a2):
    for fid in (0.0, 1.76, 10.0):
        n, d, loss = a2.optimal(3e21, fid)
        nn, dn, ln = optimal_numeric(lambda x, y, f=fid: a2.value(x, y, f), 3e21)
        assert nn == pytest.approx(n, rel=1e-6) and dn == pytest.approx(d, rel=1e-6)
        assert ln == pytest.approx(loss, rel=1e-12)
        for wn in (0.5, 0.8, 2.0):
            wd, overhead = a2.tradeoff(3e21, wn, fid)
            wd_num = tradeoff_numeric(lambda x, y, f=fid: a2.value(x, y, f), n, d, wn)
            assert wd == pytest.approx(wd_num, rel=1e-8)
            assert float(a2.value(wn * n, wd * d, fid)) == pytest.approx(loss, rel=1e-12)
            assert overhead == pytest.approx(wn * wd - 1)


def test_approach2_halving_the_model_costs_14_percent_not_10(a2, nb2):
    """paper: §3.3.2 says ω_N = 0.5 costs "~10%" more compute; Eq. 6 gives 14.5%.

    At the optimum A·N*^-α / (B'·D*^-β) = β/α whatever the budget or FID, so the overhead
    depends only on α and β: (0.5·(1 − (2^0.24 − 1)·0.23/0.24)^(−1/0.23) − 1) = 0.1446; with
    the notebook's unrounded α, β it is 0.1455. Not rounding: an inconsistency of the paper.
    """
    for flops, fid in ((1e20, 1.65), (1e25, 0.0)):
        _, overhead = nb2.tradeoff(flops, 0.5, fid)
        assert overhead == pytest.approx(0.14549, abs=1e-4)
    for flops, fid in ((1e20, 1.65), (1e25, 0.0)):
        _, overhead = a2.tradeoff(flops, 0.5, fid)
        assert overhead == pytest.approx(0.14465, abs=1e-4)
    # below ω_N = (1 + α/β)^(−1/α) ≈ 0.051 no amount of data reaches L*
    wd, overhead = a2.tradeoff(1e20, 0.04, 1.65)
    assert math.isinf(wd) and math.isinf(overhead)


def test_approach3_rounded_values_miss_table3_by_rounding(a3):
    """Table 3 lists a = 0.47, b = 0.53, L* = 0.56 at FID 0 and L* = 0.63, E' = 0.55 at FID
    1.76; Eq. 5 with the rounded appendix F.3 constants gives 0.478, 0.522, 0.569, 0.646, 0.561
    (and B^β = 7.01 for the paper's 6.85). All rounding: the notebook's constants reproduce
    every one (test_table3_from_the_notebooks_constants). We pin the rounded formula's values."""
    der = approach3.derived(a3.params)
    assert der["a"] == pytest.approx(0.22 / 0.46) and der["b"] == pytest.approx(0.24 / 0.46)
    assert der["B_pow_beta"] == pytest.approx(7000 ** 0.22)
    assert round(der["B_pow_beta"], 2) == 7.01
    _, _, l0 = a3.optimal(1e25, 0.0)
    _, _, l1 = a3.optimal(1e25, 1.76)
    assert l0 == pytest.approx(0.56914, abs=2e-4)
    assert l1 == pytest.approx(0.64634, abs=2e-4)
    assert float(a3.asymptote(1.76)) == pytest.approx(
        (0.007 * 1.76) ** 0.6 + 0.52 + 0.04 * math.log(2.76))
    # E' alone (the table's column): E + ε ln(1 + FID)
    assert 0.52 + 0.04 * math.log(2.76) == pytest.approx(0.5606, abs=1e-4)


def test_approach3_fid0_reduces_to_chinchilla_form(a3):
    n, d = np.array([1e7, 1e8, 1e9]), np.array([1e7, 3e8, 1e10])
    p = a3.params
    ref = p["A"] / n ** p["alpha"] + p["B"] ** p["beta"] / d ** p["beta"] + p["E"]
    assert np.allclose(a3.value(n, d, 0.0), ref, rtol=1e-13)
    # at FID 0 the optimum scales with constant exponents like Approach 2's
    n1, _, _ = a3.optimal(1e22, 0.0)
    n2, _, _ = a3.optimal(1e24, 0.0)
    assert math.log(n2 / n1) / math.log(100) == pytest.approx(0.22 / 0.46, abs=1e-6)
    # at FID 1.76 additional compute goes mostly to N (data quality bottleneck, §F.4)
    m1, _, _ = a3.optimal(1e24, 1.76)
    m2, _, _ = a3.optimal(1e26, 1.76)
    assert math.log(m2 / m1) / math.log(100) > 0.7


def test_approach3_numeric_optimum_is_the_minimum(a3):
    n, d, loss = a3.optimal(1e21, 5.0)
    for f in (0.9, 0.99, 1.01, 1.1):
        assert float(a3.value(n * f, d / f, 5.0)) > loss
    wd, overhead = a3.tradeoff(1e21, 2.0, 5.0)
    assert 0 < wd < 1 and float(a3.value(2 * n, wd * d, 5.0)) == pytest.approx(loss, rel=1e-10)


def test_debenedetti_preset_units():
    law = Law(preset("debenedetti2024"))
    # the paper's constants, read with FLOPs in teraFLOPs and accuracy in percent
    f = 1.7e18
    out = predict_one(law, {"flops": f})
    assert out["accuracy"] == pytest.approx(0.5086 * (f / 1e12) ** 0.01, rel=1e-12)
    assert 0.5 < out["accuracy"] < 0.65
    assert out["cost_usd"] == pytest.approx(7.0e-6 * (f / 1e12) ** 0.95, rel=1e-12)
    with pytest.raises(AdvscaleError, match="predicts from flops"):
        predict_one(law, {"n": 1e7, "d": 1e7})


def test_every_preset_loads_and_predicts():
    for name in PRESETS:
        law = Law(preset(name))
        out = predict_one(law, {"flops": 1e21, "fid": 1.0})
        assert out["law"] == name
        assert all(v is None or np.isfinite(v) for v in out.values() if isinstance(v, float))
    with pytest.raises(AdvscaleError, match="unknown law"):
        preset("chinchilla")
