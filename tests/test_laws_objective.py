"""The fitting machinery: Huber objective and gradients, screening, tight polishing, batching."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from scipy.optimize import minimize

from advscale.laws import approach2, approach3, optimize
from advscale.laws.bootstrap import draw_counts
from advscale.laws.fit import fit_law
from advscale.laws.objective import Design, Problem, huber
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs

A2 = PRESETS["bartoldson2024-approach2-rounded"]["params"]
A3 = PRESETS["bartoldson2024-approach3-rounded"]["params"]


@pytest.fixture(scope="module")
def data2() -> Design:
    recs = simulate_runs(A2, n_values=[6e6, 1.2e7, 2.5e7, 5e7, 1e8, 2e8, 3.2e8],
                         d_values=[5e6, 1e7, 2e7, 5e7, 1e8], fids=[0.0, 1.76, 5.0, 10.0],
                         noise=0.002, seed=0)
    return Design([r["params"] for r in recs], [r["samples_seen"] for r in recs],
                  [r["fid"] for r in recs], [r["adv_loss"] for r in recs])


def test_huber_is_quadratic_then_linear():
    d = 1e-3
    r = np.array([0.0, 5e-4, -1e-3, 2e-3, -0.1])
    assert np.allclose(huber(r, d), [0, 0.5 * 25e-8, 0.5e-6, d * (2e-3 - d / 2),
                                     d * (0.1 - d / 2)])


@pytest.mark.parametrize("form,params", [(approach2.FORM, A2), (approach3.FORM, A3)])
def test_jacobians_match_finite_differences(form, params):
    x = Design(np.geomspace(1e6, 1e9, 7), np.geomspace(2e6, 5e9, 7),
               [0.0, 1.7, 3.0, 0.0, 10.0, 35.0, 2.0], np.full(7, 0.6))
    th = form.from_public(params)
    lp, jac = form.log_predict_jac(th[None], x)
    assert np.allclose(lp, form.log_predict(th[None], x), rtol=0, atol=1e-14)
    h = 1e-6
    for i in range(th.size):
        e = np.zeros_like(th)
        e[i] = h
        num = (form.log_predict((th + e)[None], x) - form.log_predict((th - e)[None], x)) / (2 * h)
        assert np.allclose(jac[0, :, i], num[0], atol=1e-8), form.names[i]
    # log-sum-exp form agrees with the plain formula
    mod = approach2 if form is approach2.FORM else approach3
    assert np.allclose(np.exp(lp[0]), mod.predict_loss(params, x.n, x.d, x.fid), rtol=1e-13)


def test_summed_huber_gradient_is_exact(data2):
    pr = Problem.all_free(approach2.FORM, data2)
    z = approach2.FORM.from_public(A2) + 0.01
    f, g = pr.objective_grad(z)
    assert f == pytest.approx(huber(pr.residuals(z)).sum())  # summed, not averaged
    h = 1e-7
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = h
        num = (pr.objective(z + e) - pr.objective(z - e)) / (2 * h)
        assert g[i] == pytest.approx(num, rel=1e-4, abs=1e-9)


def test_default_lbfgs_stops_early_tight_polish_does_not(data2):
    """SciPy's default L-BFGS-B tolerances stop far from the optimum on the summed Huber loss
    (the failure Epoch AI found in the Chinchilla fit); the tight polish reaches it."""
    pr = Problem.all_free(approach2.FORM, data2)
    z0 = np.array([2.0, 2.0, -1.0, 0.25, 0.25, 0.1, -0.15])
    naive = minimize(pr.objective, z0, method="L-BFGS-B", bounds=list(zip(pr.lower, pr.upper,
                                                                           strict=True)))
    tight = optimize.polish(pr, z0)
    assert tight.objective < naive.fun * 0.95
    beta_naive, beta_tight = naive.x[4], tight.z[4]
    assert abs(beta_tight - 0.23) < 0.01 < abs(beta_naive - 0.23)
    # polishing the naive result reaches the same optimum
    assert optimize.polish(pr, naive.x).objective == pytest.approx(tight.objective, rel=1e-9)


def test_polish_keeps_a_better_optimum_whatever_the_success_flag(data2, monkeypatch):
    pr = Problem.all_free(approach2.FORM, data2)
    best = optimize.polish(pr, approach2.FORM.from_public(A2)).z

    class Fake:
        x, success, message, nfev = best, False, "maximum evaluations reached", 2000

    # optimize imports SciPy's optimisers when it polishes (laws stay light at import)
    monkeypatch.setattr(scipy.optimize, "least_squares", lambda *a, **k: Fake())
    res = optimize.polish(pr, approach2.FORM.from_public(A2) + 0.3, lbfgs=False)
    assert np.allclose(res.z, best) and res.success is False
    assert res.objective == pytest.approx(pr.objective(best))


def test_screen_only_improves_and_ranks_starts(data2):
    pr = Problem(approach2.FORM, data2, np.zeros(7), np.arange(5))
    starts = approach2.grid(1)[::50]
    f0 = pr.objective_batch(np.clip(starts, pr.lower, pr.upper))
    z, f = optimize.screen(pr, starts, iters=10)
    assert np.all(f <= f0)
    res = optimize.multistart(pr, starts, top_k=3, screen_iters=10)
    objs = [c.objective for c in res.candidates]
    assert objs == sorted(objs) and res.best.objective <= f.min()
    assert res.summary()["starts"] == len(starts)


def test_batched_bootstrap_refit_equals_serial_polish(data2):
    th = approach2.refit(data2, approach2.FORM.from_public(A2)[None]).z
    counts = draw_counts(data2.run, 6, seed=1)
    batched = approach2.refit_batch(data2, th, counts)
    for k in range(len(counts)):
        rows = np.repeat(np.arange(len(data2)), counts[k])
        pk = Problem.all_free(approach2.FORM, data2.take(rows))
        serial = optimize.polish(pk, th)
        assert pk.objective(batched[k]) <= serial.objective * (1 + 1e-9)
        assert np.allclose(batched[k], serial.z, atol=1e-4)


def test_draw_counts_resamples_whole_runs():
    run = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    c = draw_counts(run, 50, seed=7)
    assert c.shape == (50, 8)
    for row in c:
        assert row[0] == row[1] == row[2] and row[3] == row[4] and row[6] == row[7]
        assert row[[0, 3, 5, 6]].sum() == 4  # 4 runs drawn per replicate
    assert np.array_equal(c, draw_counts(run, 50, seed=7))


def test_fit_at_a_bound_is_flagged():
    # Approach 3 keeps ε >= 0 (worse data cannot lower the irreducible loss); data made with a
    # negative ε drive the fit onto that bound, and the fit record says so
    p = dict(A3, epsilon=-0.03)
    recs = simulate_runs(p, form="approach3", n_values=[6e6, 2.5e7, 1e8, 3.2e8],
                         d_values=[5e6, 3e7, 3e8], fids=[1.65, 5.0, 35.0], noise=0.002)
    out = fit_law(records=recs, approach="3", exclusion=False, n_boot=0, full_grid=False)
    assert out["at_bound"] == ["epsilon"] and out["params"]["epsilon"] < 1e-6
