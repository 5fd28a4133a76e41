"""The field on the law (issue 26, item 4): published runs placed on Bartoldson et al.'s
Approach 2 law, Eq. 6's compute overhead checked independently, the WRNs nearest N*."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.laws.law import Law
from advscale.laws.presets import preset
from advscale.laws.published import PUBLISHED_RUNS, builtin_runs, load_runs, place
from advscale.laws.wrn_sizes import nearest_wrns, wrn_params

K = 7822.0
WANG_N, WANG_D = 266_796_506, 1e8  # WRN-70-16 on 2000 epochs × 50,000 samples


def _eq6_overhead(p: dict, n: float, d: float, fid: float) -> tuple[float, float]:
    """Bartoldson et al. Eq. 4 and Eq. 6, written out here: N*, and ω_N·ω_D − 1."""
    a, b = p["alpha"], p["beta"]
    bq = p["B"] * (1 + fid) ** p["zeta"]
    c = K * n * d / K
    g = (a * p["A"] / (b * bq)) ** (1 / (a + b))
    n_opt, d_opt = g * c ** (b / (a + b)), c ** (a / (a + b)) / g
    wn = n / n_opt
    wd = (1 - (wn ** -a - 1) * p["A"] * n_opt ** -a / (bq * d_opt ** -b)) ** (-1 / b)
    return n_opt, wn * wd - 1


def test_wang_wrn_70_16_overhead_is_eq6():
    law = Law.load("bartoldson2024-approach2")
    wang = next(r for r in builtin_runs() if r["name"] == "wang2023-wrn-70-16")
    assert wang["params"] == WANG_N and wang["samples_seen"] == WANG_D
    got = place(law, wang, fid=1.65)
    n_opt, overhead = _eq6_overhead(preset("bartoldson2024-approach2")["params"], WANG_N,
                                    WANG_D, 1.65)
    assert got["n_opt"] == pytest.approx(n_opt, rel=1e-9)
    assert got["compute_overhead"] == pytest.approx(overhead, rel=1e-9)
    assert 0.2 < overhead < 0.5 and got["omega_n"] > 3  # too large a model for its budget
    # a compute-optimal run reaches the same predicted loss with fewer FLOPs
    assert got["flops_optimal_for_loss"] < got["train_flops"] and got["flops_saving"] > 0.2
    assert 0 < got["accuracy"] < 1 and got["reported_aa_acc"] == 0.7069


def test_unstated_runs_are_listed_not_placed_and_every_run_is_cited():
    law = Law.load("bartoldson2024-approach2")
    for run in builtin_runs():
        assert run["source"]
        out = place(law, run)
        assert out["placed"] is bool(run["params"] and run["samples_seen"])
    names = {r["name"] for r in PUBLISHED_RUNS}
    assert {"bartoldson2024-wrn-94-16", "bartoldson2024-wrn-82-8", "wang2023-wrn-70-16",
            "wang2023-wrn-28-10"} <= names


@pytest.mark.parametrize("depth,width", [(10, 1), (16, 2), (28, 4), (22, 3)])
def test_wrn_params_match_the_built_model(depth, width):
    from advscale.models import count_parameters, create_model

    assert wrn_params(depth, width) == count_parameters(create_model(f"wrn-{depth}-{width}"))


def test_wrn_params_paper_sizes():
    assert wrn_params(28, 10) == 36_479_194 and wrn_params(70, 16) == WANG_N
    assert round(wrn_params(82, 8) / 1e6) == 79 and round(wrn_params(94, 16) / 1e6) == 366


def test_predict_at_wangs_budget_names_wrn_82_8():
    flops = K * WANG_N * WANG_D
    r = CliRunner().invoke(app, ["predict", "--law", "bartoldson2024-approach2", "--flops",
                                 repr(flops), "--fid", "1.65"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    models = rec["models"]
    assert models[0]["name"] == "wrn-82-8" and models[0]["registered"]
    assert models[0]["flops_per_sample"] == pytest.approx(K * wrn_params(82, 8))
    assert all(abs(math.log(m["n_over_n_opt"])) < 0.15 for m in models)
    assert not any(m["registered"] for m in models[2:])
    assert nearest_wrns(rec["n_opt"], K)[0]["name"] == "wrn-82-8"


def test_predict_published_and_own_runs(tmp_path):
    own = tmp_path / "mine.csv"
    own.write_text("name,params,samples_seen,fid\nmine,36479194,5e7,2.0\n")
    assert load_runs(str(own))[0]["params"] == 36479194
    r = CliRunner().invoke(app, ["predict", "--law", "bartoldson2024-approach2",
                                 "--published", "--runs", str(own)])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["run"] for x in recs][-1] == "mine" and len(recs) == len(PUBLISHED_RUNS) + 1
    mine = recs[-1]
    assert mine["placed"] and mine["fid"] == 2.0 and mine["kind"] == "prediction"
    bad = tmp_path / "bad.csv"
    bad.write_text("name,params,samples_seen\nx,lots,1\n")
    r = CliRunner().invoke(app, ["predict", "--law", "bartoldson2024-approach2", "--runs",
                                 str(bad)])
    assert r.exit_code != 0 and "not a number" in r.output


def test_report_draws_the_field_on_the_law(tmp_path):
    from advscale.report.page import build_report

    out = build_report([], tmp_path / "rep", laws=[preset("bartoldson2024-approach2")],
                       published=builtin_runs())
    six = out["axes"]["published_runs.png"][0]
    assert six["xlabel"] == "training samples seen D" and six["ylabel"] == "parameters N"
    assert "compute-optimal N*(F), FID 1.65" in six["legend"]
    assert six["xscale"] == six["yscale"] == "log"
    seven = out["axes"]["compute_overhead.png"][0]
    assert seven["xlabel"] == "parameters N" and seven["ylabel"].startswith("compute overhead (%")
    wang = next(p for p in out["published"] if p["run"] == "wang2023-wrn-70-16")
    assert wang["placed"] and wang["compute_overhead"] > 0.2
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "Published runs on the law" in page and "wang2023-wrn-70-16" in page
    assert "not placed because" in page and "peng2023-rawrn-70-16" in page
