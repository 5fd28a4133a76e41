"""Backtesting (issue 26, item 5): ``fit --holdout EXPR`` fits on the runs outside EXPR and
predicts those inside; on a simulated study it recovers the law's own extrapolation error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.laws.approach import get_approach
from advscale.laws.backtest import backtest_record
from advscale.laws.law import Law
from advscale.laws.presets import preset
from advscale.laws.simulate import simulate_runs
from advscale.records import dumps

TRUE = {k: v for k, v in preset("bartoldson2024-approach2")["params"].items()}
HOLDOUT = "train_flops > 2e18"


def _study(noise: float) -> list[dict]:
    return simulate_runs(TRUE, noise=noise, seed=4)


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_backtest_recovers_the_laws_own_extrapolation_error(noise):
    recs = _study(noise)
    rec = backtest_record(records=recs, holdout=HOLDOUT, approach="2", n_boot=0,
                          exclusion=False, full_grid=False)
    bt = rec["backtest"]
    flops = {r["run_id"]: r["train_flops"] for r in recs}
    inside = {rid for rid, f in flops.items() if f > 2e18}
    assert {r["run_id"] for r in bt["runs"]} == inside and bt["n_held_out"] == len(inside)
    assert rec["n_runs"] == bt["n_fit_runs"] == len(flops) - len(inside)
    assert rec["data"]["flops_range"][1] <= 2e18  # the law never saw a held-out run
    fitted = Law(dict(rec, name="x"))
    truth = get_approach("approach2").predict
    actual = {r["run_id"]: r["adv_loss"] for r in recs}
    for r in bt["runs"]:  # independently: predicted − actual from the fitted law and the data
        assert r["predicted"] == pytest.approx(float(fitted.value(r["n"], r["d"], r["fid"])))
        assert r["error"] == pytest.approx(r["predicted"] - actual[r["run_id"]])
    # the law's own extrapolation error: fitted vs true law at the held-out runs
    own = np.array([float(fitted.value(r["n"], r["d"], r["fid"]))
                    - float(truth(TRUE, r["n"], r["d"], r["fid"])) for r in bt["runs"]])
    errs = np.array([r["error"] for r in bt["runs"]])
    if noise == 0:
        assert np.allclose(errs, own, atol=1e-12)
        assert bt["rmse_log"] < 1e-3
    else:  # σ = 1% noise: the backtest's mean error estimates the law's own to noise/√n
        scale = np.mean([r["actual"] for r in bt["runs"]])
        assert abs(np.mean(errs) - np.mean(own)) < 3 * noise * scale / np.sqrt(len(errs))
        assert bt["mae"] == pytest.approx(np.mean(np.abs(errs)))


def test_backtest_bands_and_cli(tmp_path):
    path = tmp_path / "sim.jsonl"
    path.write_text("".join(dumps(r) + "\n" for r in _study(0.01)))
    r = CliRunner().invoke(app, ["fit", str(path), "--approach", "2", "--holdout", HOLDOUT,
                                 "--bootstrap", "20", "--no-paper-exclusion", "--coarse-grid",
                                 "-q"])
    assert r.exit_code == 0, r.output
    bt = json.loads(r.stdout)["backtest"]
    assert bt["band_level"] == 0.95 and 0.0 <= bt["coverage"] <= 1.0
    assert all(len(x["band"]) == 2 and isinstance(x["in_band"], bool) for x in bt["runs"])
    bad = CliRunner().invoke(app, ["fit", str(path), "--approach", "2", "--holdout",
                                   "train_flops > 1e30", "--bootstrap", "0", "-q"])
    assert bad.exit_code != 0 and "no run" in bad.output


def test_report_draws_the_backtest(tmp_path):
    from advscale.report.page import build_report

    recs = _study(0.01)
    rec = backtest_record(records=recs, holdout=HOLDOUT, approach="2", n_boot=10,
                          exclusion=False, full_grid=False)
    out = build_report(recs, tmp_path / "rep", laws=[rec])
    ax = out["axes"]["backtest.png"][0]
    assert ax["xscale"] == "log" and ax["xlabel"] == "training FLOPs"
    assert ax["ylabel"].startswith("relative error of the predicted loss")
    assert ax["points"]["held-out run"] == rec["backtest"]["n_held_out"]


def test_backtest_refuses_laws_that_do_not_predict_a_run():
    from advscale.errors import AdvscaleError

    with pytest.raises(AdvscaleError, match="gbr fit does not predict"):
        backtest_record(records=_study(0.0), holdout=HOLDOUT, approach="gbr", n_boot=0)
