"""`advscale fit` and `advscale predict`: pipes, stdin/stdout, errors, and no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import HANG_GUARD_S
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs
from advscale.records import dumps, loads_all

A2 = PRESETS["bartoldson2024-approach2-rounded"]["params"]
NS = [6e6, 1.2e7, 2.5e7, 5e7, 1e8, 2e8]

# Stands in for `advscale train ... ` : prints train.eval records (with whole curves) to stdout.
TRAIN_SCRIPT = (
    "from advscale.laws.simulate import simulate_runs\n"
    "from advscale.laws.presets import PRESETS\n"
    "from advscale.records import write_record\n"
    "p = PRESETS['bartoldson2024-approach2-rounded']['params']\n"
    "for r in simulate_runs(p, n_values=[6e6, 1.2e7, 2.5e7, 5e7, 1e8, 2e8],\n"
    "        d_values=[5e6, 1e7, 2e7, 5e7], fids=[1.0, 4.0, 10.0], noise=0.002,\n"
    "        curve_points=3):\n"
    "    write_record(r)\n"
)

# Runs the CLI in a fresh interpreter and reports at exit whether torch was ever imported.
CLI_SCRIPT = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('TORCH_LOADED=%s\\n' % ('torch' in sys.modules)))\n"
    "sys.argv = ['advscale'] + sys.argv[1:]\n"
    "from advscale.cli.main import main\n"
    "main()\n"
)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI_SCRIPT, *args]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def records_file(tmp_path_factory):
    recs = simulate_runs(A2, n_values=NS, d_values=[5e6, 1e7, 2e7, 5e7], fids=[1.0, 4.0, 10.0],
                         noise=0.002, seed=2)
    path = tmp_path_factory.mktemp("fit") / "metrics.jsonl"
    path.write_text("".join(dumps(r) + "\n" for r in recs))
    return path


def test_help_and_fit_never_import_torch(records_file):
    out = subprocess.run(_cli("fit", "--help"), capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert out.returncode == 0 and "--approach" in out.stdout
    assert "TORCH_LOADED=False" in out.stderr
    out = subprocess.run(_cli("fit", str(records_file), "--approach", "2", "-B", "5",
                              "--coarse-grid", "-q"), capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert out.returncode == 0, out.stderr
    assert "TORCH_LOADED=False" in out.stderr
    assert loads_all(out.stdout)[0]["kind"] == "fit"


def test_train_fit_predict_compose_through_pipes():
    """`advscale train | advscale fit - --approach 2 | advscale predict --law - ...`."""
    train = subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT], stdout=subprocess.PIPE)
    fit = subprocess.Popen(
        _cli("fit", "-", "--approach", "2", "--points", "final", "-B", "40", "--coarse-grid",
             "--no-paper-exclusion"),
        stdin=train.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    train.stdout.close()
    predict = subprocess.Popen(
        _cli("predict", "--law", "-", "--flops", "1e21", "--fid", "1.76", "--omega-n", "0.5",
             "--accuracy"),
        stdin=fit.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fit.stdout.close()
    out, perr = predict.communicate(timeout=HANG_GUARD_S)
    ferr = fit.stderr.read().decode()
    assert train.wait(timeout=HANG_GUARD_S) == 0 and fit.wait(timeout=HANG_GUARD_S) == 0, ferr
    assert predict.returncode == 0, perr
    assert "TORCH_LOADED=False" in ferr and "TORCH_LOADED=False" in perr
    assert "approach 2 stage 1" in ferr and "bootstrap: 40 replicates over 72 runs" in ferr
    (rec,) = loads_all(out)
    assert rec["kind"] == "prediction" and rec["law"] == "<stdin>"
    assert rec["form"] == "approach2" and rec["bootstrap_samples"] == 40
    n, d = rec["n_opt"], rec["d_opt"]
    assert n * d * rec["flops_per_param_sample"] == pytest.approx(1e21, rel=1e-6)
    # the fitted law's optimum is close to the true law's
    truth = PRESETS["bartoldson2024-approach2-rounded"]
    from advscale.laws.law import Law

    t_n, _, t_loss = Law(dict(truth, name="t")).optimal(1e21, 1.76)
    assert rec["loss_opt"] == pytest.approx(t_loss, rel=0.01)
    assert rec["n_opt"] == pytest.approx(t_n, rel=0.5)
    lo, hi = rec["bands"]["loss_opt"]
    assert lo <= rec["loss_opt"] <= hi
    assert rec["compute_overhead"] > 0 and rec["omega_d"] > 1
    assert rec["accuracy_opt"] == pytest.approx(1.2575 - 0.7496 * rec["loss_opt"], abs=2e-3)


def test_fit_output_file_and_predict_queries_on_stdin(runner, records_file, tmp_path):
    law = tmp_path / "law.json"
    res = runner.invoke(app, ["fit", str(records_file), "--approach", "2", "-B", "20",
                              "--coarse-grid", "-o", str(law), "-q", "--filter", "fid < 8"])
    assert res.exit_code == 0, res.output
    doc = json.loads(law.read_text())
    assert doc["kind"] == "fit" and doc["filters"] == ["fid < 8"]
    assert doc["data"]["fids"] == [1.0, 4.0]
    assert doc["provenance"]["config"]["bootstrap"] == 20
    # the exclusion rule is on by default for approach 2 and logged in the record
    assert doc["exclusion"]["applied"] and len(doc["exclusion"]["dropped_runs"]) == 16
    queries = "\n".join([
        json.dumps({"n": 3e7, "d": 2e7, "fid": 1.0}),
        json.dumps({"params": 3e7, "samples_seen": 2e7}),  # train.eval-style; --fid default
        json.dumps({"flops": 1e20, "omega_n": 0.7}),
    ]) + "\n"
    res = runner.invoke(app, ["predict", "--law", str(law), "--fid", "1.0"], input=queries)
    assert res.exit_code == 0, res.output
    recs = loads_all(res.stdout)
    assert [r["kind"] for r in recs] == ["prediction"] * 3
    assert recs[0]["loss"] == pytest.approx(recs[1]["loss"])
    assert recs[0]["query"] == {"n": 3e7, "d": 2e7, "fid": 1.0}
    assert "loss_inf" in recs[0] and "bands" in recs[0]
    assert recs[2]["omega_n"] == 0.7 and recs[2]["omega_d"] > 1


def test_fit_takes_the_registry_name_too(runner, records_file):
    res = runner.invoke(app, ["fit", str(records_file), "--approach", "approach2", "-B", "0",
                              "--coarse-grid", "-q"])
    assert res.exit_code == 0, res.output
    (rec,) = loads_all(res.stdout)
    assert rec["approach"] == "2" and rec["form"] == "approach2"
    assert rec["provenance"]["config"]["approach"] == "approach2"
    res = runner.invoke(app, ["fit", str(records_file), "--approach", "4"])
    assert res.exit_code == 2 and "--approach '4': choose from 1, 2, 3" in res.output


def test_predict_preset_from_options(runner):
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach2-rounded", "--n",
                              "1e8", "--d", "1e9", "--fid", "0", "--accuracy"])
    assert res.exit_code == 0, res.output
    (rec,) = loads_all(res.stdout)
    want = float(A2["A"] / 1e8 ** A2["alpha"] + A2["B"] / 1e9 ** A2["beta"] + A2["E"])
    assert rec["loss"] == pytest.approx(want)
    assert rec["accuracy"] == pytest.approx(1.2575 - 0.7496 * want)
    assert rec["train_flops"] == pytest.approx(7822 * 1e17)
    # the model's own FLOPs constant (count-flops' flops_per_param_sample) moves the optimum
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach2", "--flops", "1e21",
                              "--flops-per-param-sample", "3000"])
    (rec,) = loads_all(res.stdout)
    assert rec["flops_per_param_sample"] == 3000
    assert rec["n_opt"] * rec["d_opt"] * 3000 == pytest.approx(1e21, rel=1e-9)


def test_errors_are_one_line_and_leave_no_output(runner, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "train.eval", "run_id": "a", "params": 5, "samples_seen": 1}\n'
                   "oops\n")
    out = tmp_path / "law.json"
    res = runner.invoke(app, ["fit", str(bad), "--approach", "2", "-o", str(out)])
    assert res.exit_code == 2
    assert "advscale: error:" in res.output and "bad.jsonl:2: not valid JSON" in res.output
    assert not out.exists() and not list(tmp_path.glob(".law.json*"))
    bad.write_text('{"kind": "train.eval", "run_id": "a", "params": 5, "samples_seen": 1}\n')
    res = runner.invoke(app, ["fit", str(bad), "--approach", "2"])
    assert res.exit_code == 2 and "bad.jsonl:1: train.eval record lacks 'adv_loss'" in res.output
    res = runner.invoke(app, ["predict", "--law", "nope"])
    assert res.exit_code == 2 and "no such file, and not a preset" in res.output
    res = runner.invoke(app, ["predict", "--law", "-"], input="")
    assert res.exit_code == 2 and "give the query as options" in res.output
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach2", "--n", "1e8"])
    assert res.exit_code == 2 and "give both n and d" in res.output
    res = runner.invoke(app, ["predict", "--law", "debenedetti2024"], input='{"flops": -1}\n')
    assert res.exit_code == 2 and "<stdin>:1: flops must be > 0" in res.output
    res = runner.invoke(app, ["fit", str(bad), "--approach", "2", "--filter", "import os"])
    assert res.exit_code == 2 and "--filter" in res.output


def test_fid_metric_provenance_warns_in_fit_and_predict(runner, tmp_path):
    """FIDs measured off the published protocol are named in the law, and warned about."""
    proxy = simulate_runs(A2, n_values=NS[:4], d_values=[5e6, 1e7, 2e7], fids=[1.0, 4.0, 10.0],
                          noise=0.002, seed=3, fid_metric="fid_inception_n1000")
    src = tmp_path / "proxy.jsonl"
    src.write_text("".join(dumps(r) + "\n" for r in proxy))
    law = tmp_path / "law.json"
    res = runner.invoke(app, ["fit", str(src), "--approach", "2", "-B", "0", "--coarse-grid",
                              "--no-paper-exclusion", "-o", str(law)])
    assert res.exit_code == 0, res.output
    assert "fid_inception_n1000, not the published protocol" in res.stderr
    doc = json.loads(law.read_text())
    assert doc["fid_inputs"] == {"metrics": ["fid_inception_n1000"], "synthetic_points": 36,
                                 "unlabelled_points": 0, "comparable_to_published": False}
    res = runner.invoke(app, ["predict", "--law", str(law), "--n", "3e7", "--d", "2e7",
                              "--fid", "2"])
    assert res.exit_code == 0, res.output
    (rec,) = loads_all(res.stdout)
    assert "not the published protocol" in rec["fid_warning"]
    assert res.stderr.count("warning:") == 1
    # FID 0 (ideal data) needs no FID metric: no warning
    res = runner.invoke(app, ["predict", "--law", str(law), "--n", "3e7", "--d", "2e7"])
    assert "fid_warning" not in loads_all(res.stdout)[0] and "warning" not in res.stderr

    # published-protocol FIDs: comparable, silent
    pub = tmp_path / "pub.jsonl"
    pub.write_text("".join(dumps(r) + "\n" for r in simulate_runs(
        A2, n_values=NS[:4], d_values=[5e6, 1e7, 2e7], fids=[1.0, 4.0], noise=0.002, seed=3)))
    res = runner.invoke(app, ["fit", str(pub), "--approach", "2", "-B", "0", "--coarse-grid",
                              "--no-paper-exclusion"])
    assert res.exit_code == 0 and "warning: FID" not in res.stderr
    assert loads_all(res.stdout)[0]["fid_inputs"]["comparable_to_published"] is True

    # a preset (published FIDs) queried with a train.eval record whose FID is a proxy
    query = json.dumps(proxy[0]) + "\n"
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach2"], input=query)
    assert res.exit_code == 0, res.output
    assert "the query's FID is fid_inception_n1000" in loads_all(res.stdout)[0]["fid_warning"]


def test_fit_protocol_options_reach_the_record(runner, records_file):
    """--protocol sets every choice; each option changes one; the record logs them all."""
    res = runner.invoke(app, ["fit", str(records_file), "--approach", "2", "-B", "0", "-q",
                              "--protocol", "bartoldson2024", "--base-dataset", "sim",
                              "--stage2-dataset", "sim", "--anchor", "fid0",
                              "--min-train-fraction", "0.3", "--coarse-grid"])
    assert res.exit_code == 0, res.output
    (rec,) = loads_all(res.stdout)
    proto = rec["protocol"]
    assert proto["name"] == "bartoldson2024" and proto["anchor"] == "fid0"
    assert proto["base_dataset"] == "sim" and proto["stage2_datasets"] == ["sim"]
    assert proto["min_train_fraction"] == 0.3 and proto["joint_polish"] is False
    assert rec["points"] == "best" and rec["exclusion"]["size"] == "nominal"
    assert rec["provenance"]["config"]["protocol"] == "bartoldson2024"
    assert rec["provenance"]["config"]["protocol_options"]["anchor"] == "fid0"
    res = runner.invoke(app, ["fit", str(records_file), "--approach", "2", "--protocol", "x"])
    assert res.exit_code == 2 and "protocol 'x': choose from advscale, bartoldson2024" in \
        res.output


def test_predict_reports_table3_exponents(runner):
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach2", "--flops", "1e25"])
    (rec,) = loads_all(res.stdout)
    assert rec["a"] == pytest.approx(0.48285756085236076) and "a_local" not in rec
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach3", "--flops", "1e22",
                              "--fid", "1.76"])
    (rec,) = loads_all(res.stdout)
    # at FID > 0 the FID-0 a, b do not apply (Table 3: "–"): only the local ones, with a note
    assert "a" not in rec and "b" not in rec and rec["a_local"] > 0.4734
    assert rec["a_local"] + rec["b_local"] == pytest.approx(1.0) and "FID-0" in rec[
        "exponents_note"]
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach3", "--flops", "1e22"])
    (rec,) = loads_all(res.stdout)
    assert rec["a"] == pytest.approx(0.4734, abs=1e-4) and "exponents_note" not in rec


def test_approach3_labels_e_prime_and_the_quality_inclusive_asymptote(runner):
    """Table 3's E′ (0.5513 at FID 1.76) is not Approach 3's asymptote (0.619), which adds the
    data-quality floor (Q·FID)^κ; the record gives both, each labelled."""
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach3", "--flops", "1e22",
                              "--fid", "1.76"])
    (rec,) = loads_all(res.stdout)
    assert rec["e_prime"] == pytest.approx(0.5513, abs=5e-5)
    assert rec["loss_inf"] == pytest.approx(0.619, abs=5e-4) and "quality-inclusive" in rec[
        "asymptote_kind"]
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach2", "--n", "1e8",
                              "--d", "1e8", "--fid", "1.76"])
    (rec,) = loads_all(res.stdout)
    assert rec["e_prime"] == rec["loss_inf"] == pytest.approx(0.5639, abs=5e-5)


def test_fit_table_options_and_errors(runner, records_file, tmp_path):
    """--bins and --x reach the power law; an unknown --filter field is named (issue 16.3)."""
    res = runner.invoke(app, ["fit", str(records_file), "--approach", "2", "--filter",
                              "parms > 1"])
    assert res.exit_code == 2 and "unknown field parms" in res.output
    assert "did you mean params" in res.output
    res = runner.invoke(app, ["fit", str(records_file), "--approach", "power-law", "--target",
                              "robust_acc", "--bins", "6", "-B", "0"])
    assert res.exit_code == 0, res.output
    (rec,) = loads_all(res.stdout)
    assert rec["stats"]["bins"] == 6 and rec["x"] == "train_flops"
    assert rec["provenance"]["config"]["bins"] == 6
    res = runner.invoke(app, ["fit", str(records_file), "--approach", "2", "--bins", "6"])
    assert res.exit_code == 2 and "--bins applies to --approach power-law" in res.output


def test_predict_target_accuracy_cli(runner, records_file, tmp_path):
    """The inverse from the command line; extrapolation warned on stderr (issue 16.4)."""
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach2",
                              "--target-accuracy", "0.7", "--fid", "1.76"])
    assert res.exit_code == 0, res.output
    (rec,) = loads_all(res.stdout)
    assert rec["reachable"] is True and rec["accuracy_opt"] == pytest.approx(0.7, rel=1e-6)
    assert rec["n_opt"] > 1e6 and rec["flops_needed"] > 1e18
    res = runner.invoke(app, ["predict", "--law", "bartoldson2024-approach2",
                              "--target-accuracy", "0.99"])
    (rec,) = loads_all(res.stdout)
    assert rec["reachable"] is False and "unreachable" in rec["note"]
    law = tmp_path / "law.json"
    res = runner.invoke(app, ["fit", str(records_file), "--approach", "2", "-B", "0", "-q",
                              "--coarse-grid", "--no-paper-exclusion", "-o", str(law)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["predict", "--law", str(law), "--flops", "1e28", "--fid", "1"])
    assert res.exit_code == 0, res.output
    assert "warning: extrapolating" in res.stderr
    assert loads_all(res.stdout)[0]["extrapolation"]["flops"] > 10
