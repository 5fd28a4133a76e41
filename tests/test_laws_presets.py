"""The papers' published laws as presets: Table 3 of Bartoldson et al. (2024) and friends.

Where a Table 3 entry does not follow from the paper's own formula and (rounded) constants, the
test pins the formula's value and docs/laws.md says so (marked "paper:" below).
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
from advscale.laws.presets import PRESETS, preset


@pytest.fixture(scope="module")
def a2() -> Law:
    return Law(preset("bartoldson2024-approach2"))


@pytest.fixture(scope="module")
def a3() -> Law:
    return Law(preset("bartoldson2024-approach3"))


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


def test_approach2_exponents_pin_the_formula(a2):
    """paper: Table 3 gives a = 0.48, b = 0.52; Eq. 4 with α = 0.24, β = 0.23 gives 0.489/0.511.

    The table's values are within the rounding of α and β (a ∈ [0.479, 0.511] for α, β
    rounded to two decimals), so the paper used unrounded constants; we pin the formula.
    """
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


def test_approach2_halving_the_model_costs_14_percent_not_10(a2):
    """paper: §3.3.2 says ω_N = 0.5 costs "~10%" more compute; Eq. 6 gives 14.5%.

    At the optimum A·N*^-α / (B'·D*^-β) = β/α whatever the budget or FID, so the overhead
    depends only on α and β: (0.5·(1 − (2^0.24 − 1)·0.23/0.24)^(−1/0.23) − 1) = 0.1446.
    """
    for flops, fid in ((1e20, 1.65), (1e25, 0.0)):
        _, overhead = a2.tradeoff(flops, 0.5, fid)
        assert overhead == pytest.approx(0.14465, abs=1e-4)
    # below ω_N = (1 + α/β)^(−1/α) ≈ 0.051 no amount of data reaches L*
    wd, overhead = a2.tradeoff(1e20, 0.04, 1.65)
    assert math.isinf(wd) and math.isinf(overhead)


def test_approach3_published_values_pin_the_formula(a3):
    """paper: Table 3 lists a = 0.47, b = 0.53, L* = 0.56 at FID 0 and L* = 0.63, E' = 0.55
    at FID 1.76; Eq. 5 with the appendix F.3 constants gives 0.478, 0.522, 0.569, 0.646, 0.561
    (and B^β = 7.01, where the paper quotes 6.85). We pin the formula's values."""
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
