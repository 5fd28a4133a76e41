"""Any named quality metric flows from a synthetic file to a law (issue 17, item 1).

Two tiny runs train on synthetic files of two recorded proxy qualities (written by
`gen-synthetic fid --annotate`'s own writer); their train.eval records carry the metric;
Approach 3, fitted to them together with simulated runs of the same metric, names it, and so
do its predictions. A mix of metrics is refused; a preset queried in the proxy is warned.
"""

from __future__ import annotations

import json

import pytest
from conftest import make_h5
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.errors import AdvscaleError
from advscale.laws.fit import fit_law
from advscale.laws.law import Law
from advscale.laws.predict import predict_one
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs
from advscale.records import loads_all
from advscale.synthetic.quality import annotate_file

METRIC = "fd_pca64_n2000"
QUALITIES = (130.7, 1.38)
A3 = PRESETS["bartoldson2024-approach3"]["params"]
TINY = ["--model", "wrn-10-1", "--pgd-steps", "1", "--eval-n", "16", "--eval-steps", "1",
        "--batch-size", "32", "--lr", "0.1", "--no-progress", "--samples", "64",
        "--eval-every", "0"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _synthetic(path, value, seed):
    make_h5(path, 64, seed=seed, source="synthetic")
    annotate_file(path, {"quality_metric": METRIC, "quality_value": value,
                         "comparable_to_published": False, "n": 2000, "ref": "ref.h5",
                         "extractor": "pca64", "kid_metric": "kid_pca64_n2000",
                         "kid_value": 0.01})
    return path


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """train.eval records of two tiny runs on data of the two qualities."""
    d = tmp_path_factory.mktemp("quality")
    test = make_h5(d / "test.h5", 16, seed=9)
    out = []
    for i, q in enumerate(QUALITIES):
        syn = _synthetic(d / f"syn{i}.h5", q, seed=i)
        res = CliRunner().invoke(app, ["train", "--out", str(d / f"run{i}"), "--data", str(syn),
                                       "--eval-data", str(test), "--seed", str(i), *TINY])
        assert res.exit_code == 0, res.stderr
        out.extend(loads_all(res.stdout))
    return out


def test_proxy_quality_reaches_train_eval(tiny_runs):
    for rec, q in zip(tiny_runs, QUALITIES, strict=True):
        (src,) = rec["data"]
        assert src["fid"] == q and src["fid_metric"] == METRIC
        assert src["comparable_to_published"] is False
        assert rec["fid"] == q


def _simulated(metric=METRIC):
    recs = simulate_runs(A3, form="approach3", n_values=[1e5, 1e6, 1e7, 1e8],
                         d_values=[1e4, 1e6, 1e7, 1e8], fids=list(QUALITIES), noise=0.002,
                         seed=4, fid_metric=metric)
    for r in recs:
        r["run_id"] = f"{metric}-{r['run_id']}"
    return recs


def test_approach3_names_the_metric_in_law_and_predictions(tiny_runs, tmp_path):
    logs: list[str] = []
    doc = fit_law(records=[*tiny_runs, *_simulated()], approach="3", n_boot=0,
                  exclusion=False, full_grid=False, log=logs.append)
    assert doc["fid_metric"] == METRIC and doc["fid_inputs"]["metrics"] == [METRIC]
    assert doc["fid_inputs"]["comparable_to_published"] is False
    assert doc["n_runs"] == 2 + 32 and sorted(doc["data"]["fids"]) == sorted(QUALITIES)
    assert any(f"quality axis (FID) is {METRIC}" in m for m in logs)
    law = Law({"kind": "fit", "name": "proxy-law", **doc})
    assert law.fid_metric == METRIC
    for q in QUALITIES:
        rec = predict_one(law, {"flops": 1e16, "fid": q})
        assert rec["fid_metric"] == METRIC and rec["query"]["fid"] == q
        assert "not the published protocol" in rec["fid_warning"]
    # the CLI: the fit record carries it, predict labels its output with it
    path = tmp_path / "law.json"
    path.write_text(json.dumps({"kind": "fit", **doc}))
    res = CliRunner().invoke(app, ["predict", "--law", str(path), "--target-loss", "2.0",
                                   "--fid", str(QUALITIES[1])])
    assert res.exit_code == 0, res.output
    (rec,) = loads_all(res.stdout)
    assert rec["fid_metric"] == METRIC and rec["reachable"] is True


def test_a_mix_of_metrics_is_refused(tiny_runs):
    other = _simulated("fid_inception_n1000")
    with pytest.raises(AdvscaleError, match=r"one quality metric at a time.*fd_pca64_n2000, "
                                            r"fid_inception_n1000|fid_inception_n1000, "
                                            r"fd_pca64_n2000"):
        fit_law(records=[*tiny_runs, *other], approach="3", n_boot=0, exclusion=False,
                full_grid=False)
    with pytest.raises(AdvscaleError, match="fits one quality metric"):
        fit_law(records=[*_simulated(), *other], approach="2", n_boot=0, exclusion=False,
                full_grid=False)
    # the hint's filter keeps one metric and the real-data runs
    doc = fit_law(records=[*_simulated(), *other], approach="3", n_boot=0, exclusion=False,
                  full_grid=False, filters=[f"FID == 0 or fid_metric == '{METRIC}'"])
    assert doc["fid_metric"] == METRIC


def test_preset_queried_in_another_metric_warns(tiny_runs):
    law = Law.load("bartoldson2024-approach3")
    rec = predict_one(law, tiny_runs[0])
    assert rec["fid_metric"] == "fid"
    assert f"the query's FID is {METRIC}" in rec["fid_warning"]
