"""``fit`` scales: the grid screen runs in blocks of starts, which changes no result."""

from __future__ import annotations

import numpy as np
import pytest

from advscale.laws import approach2, optimize
from advscale.laws.fit import fit_law
from advscale.laws.objective import Design, Problem
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs

TRUTH = PRESETS["bartoldson2024-approach2"]["params"]


def _records() -> list[dict]:
    return simulate_runs(TRUTH, "approach2", n_values=(6e6, 1.2e7, 2.5e7, 5e7, 1e8),
                         d_values=(5e6, 1e7, 2e7, 5e7), fids=(1.65, 3.3, 6.79), seed=3)


def test_screen_in_blocks_equals_one_batch():
    rng = np.random.default_rng(0)
    n = rng.uniform(1e6, 1e8, 40)
    d = rng.uniform(1e6, 1e8, 40)
    fid = rng.choice([1.5, 3.0, 7.0], 40)
    y = approach2.predict_loss(TRUTH, n, d, fid) * np.exp(rng.normal(0, 0.01, 40))
    pr = Problem.all_free(approach2.FORM, Design(n, d, fid, y))
    starts = approach2.grid(1)[::40]
    starts = np.concatenate([starts, np.zeros((len(starts), 2))], axis=1)
    z1, f1 = optimize.screen(pr, starts, 20, block=len(starts))
    z2, f2 = optimize.screen(pr, starts, 20, block=3)
    np.testing.assert_allclose(z2, z1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f2, f1, rtol=1e-12)
    assert optimize.block_size(100_000, 7) >= 1 and optimize.block_size(10, 5) > 1000


@pytest.mark.parametrize("approach", ["2", "3"])
def test_fit_parameters_unchanged_by_the_blocking(monkeypatch, approach):
    recs = _records()
    whole = fit_law(records=recs, approach=approach, n_boot=8, full_grid=False,
                    exclusion=False)
    monkeypatch.setattr(optimize, "BLOCK_ELEMENTS", 200)  # a few starts per block
    blocked = fit_law(records=recs, approach=approach, n_boot=8, full_grid=False,
                      exclusion=False)
    for k, v in whole["params"].items():
        assert blocked["params"][k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    assert blocked["objective"] == pytest.approx(whole["objective"], rel=1e-12)
