"""A report that explains itself (issue 29.5) and records commands that say what they read
(issue 29.3): every ``--law`` named as given and drawn, runs-table columns for synthetic data,
dataset and threat model, an accuracy floor, ``-q`` quiet, ``-v`` counts, empty-table reasons.
"""

from __future__ import annotations

import json

import pytest
from browser import chromium
from test_report import _png_size
from test_tables import debenedetti_rows, write_csv
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.laws.fit import fit_law
from advscale.laws.presets import preset
from advscale.laws.simulate import simulate_runs
from advscale.records import dumps, loads_all, make_record
from advscale.records.rows import dataset_name, run_rows, threat_model, threat_text
from advscale.records.tables import import_table
from advscale.report.page import build_report

NEW_HEADERS = ("synthetic data", "dataset", "threat model (norm, ε)")
ONE_STEP_PCT = 0.4
"""A one-step run's AutoAttack accuracy (percent): above 0, under the default 1% floor."""


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """The Debenedetti-layout table (two runs at ~0.4%, four at 0%) as records, and a fitted
    power law written to fit.json, as a user would have them."""
    d = tmp_path_factory.mktemp("explains")
    rows = debenedetti_rows()
    for i in (11, 13):
        rows[i]["aa_robust_acc"] = ONE_STEP_PCT
    recs = import_table(write_csv(d / "results.csv", rows), "timm-adv-training")
    (d / "runs.jsonl").write_text("".join(dumps(r) + "\n" for r in recs))
    fit = make_record("fit", fit_law(approach="power-law", records=recs, n_boot=40,
                                     filters=["aa_acc > 0.01"], also=["cost_usd"]))
    (d / "fit.json").write_text(dumps(fit) + "\n")
    return d, recs


def _report(d, out, *extra: str):
    r = CliRunner().invoke(app, ["report", str(d / "runs.jsonl"), "--law", "debenedetti2024",
                                 "--law", str(d / "fit.json"), "-o", str(out), *extra])
    assert r.exit_code == 0, r.output
    (rec,) = loads_all(r.stdout)
    return rec, r


def test_every_law_is_named_as_given_and_drawn_on_the_accuracy_figure(deb, tmp_path):
    d, recs = deb
    rec, _ = _report(d, tmp_path / "rep")
    given = ["debenedetti2024", str(d / "fit.json")]
    assert rec["law_names"] == given
    (ax,) = rec["axes"]["accuracy_vs_flops.png"]
    for name in given:  # a line of the law, under its name, spanning the axis
        (line,) = [n for label, n in ax["lines"].items()
                   if label.startswith(f"{name}: power law ") and label.endswith("(%)")]
        assert line >= 50
        assert "accuracy_vs_flops.png" in rec["drawn_on"][name]
    # the preset's cost law is drawn, under its name, on the cost panel
    cost = rec["axes"]["energy_vs_flops.png"][0]
    assert any(label.startswith("debenedetti2024: ") for label in cost["lines"])
    assert f"{given[1]}: bootstrap band (95%)" in ax["points"]  # the fit's band is drawn


def test_the_accuracy_axis_spans_the_envelope_not_the_one_step_runs(deb, tmp_path):
    d, recs = deb
    accs = {r["run_id"]: 100 * r["robust_acc"] for r in recs if r["kind"] == "attack"}
    rec, _ = _report(d, tmp_path / "rep")
    (ax,) = rec["axes"]["accuracy_vs_flops.png"]
    low = sum(1 for a in accs.values() if a < 1.0)
    assert low == 6 and sum(1 for a in accs.values() if 0 < a < 1) == 2
    kept = [a for a in accs.values() if a >= 1.0]
    assert min(kept) / 1.5 < ax["ylim"][0] <= min(kept)  # the floor is the envelope's scale
    assert ax["points"][f"accuracy 0 or under 1%, at the axis floor ({low})"] == low
    # with the floor at 0.1%, the one-step runs take the log axis again
    rec, _ = _report(d, tmp_path / "rep2", "--acc-floor", "0.1")
    (ax,) = rec["axes"]["accuracy_vs_flops.png"]
    assert ax["ylim"][0] < ONE_STEP_PCT
    assert ax["points"]["accuracy 0 or under 0.1%, at the axis floor (4)"] == 4


def test_report_in_chromium_names_and_draws_every_law_and_has_the_new_columns(deb, tmp_path):
    d, _ = deb
    out = tmp_path / "rep"
    rec, _ = _report(d, out)
    for driver in chromium(tmp_path / "profile", window="1300,2600"):
        driver.get((out / "report.html").as_uri())
        laws = driver.execute_script(
            "return Array.from(document.querySelectorAll('table.laws tbody tr')).map("
            "r => Array.from(r.cells).map(c => c.innerText));")
        heads = driver.execute_script(
            "return Array.from(document.querySelectorAll('table.laws th')).map(h => h.innerText)")
        col = {h: i for i, h in enumerate(heads)}
        assert [row[col["law"]] for row in laws] == ["debenedetti2024", str(d / "fit.json")]
        shown = driver.execute_script(
            "return Object.fromEntries(Array.from(document.images).map("
            "i => [i.alt, i.complete && i.naturalWidth]));")
        for row in laws:
            figs = row[col["drawn on"]].split(", ")
            assert "accuracy_vs_flops.png" in figs
            assert all(shown[f] > 300 for f in figs), (row, shown)
        assert "Debenedetti" in laws[0][col["source"]]
        run_heads = driver.execute_script(
            "return Array.from(document.querySelectorAll('table.runs th')).map(h => h.innerText)")
        assert all(h in run_heads for h in NEW_HEADERS), run_heads
        cells = driver.execute_script(
            "return Array.from(document.querySelectorAll('table.runs tbody tr')).map("
            "r => Array.from(r.cells).map(c => c.innerText));")
        assert len(cells) == rec["runs"] == 40
        syn, data, threat = (run_heads.index(h) for h in NEW_HEADERS)
        assert {r[syn] for r in cells} == {"yes", "no"}
        assert {r[data] for r in cells} == {"cifar10-train", "cifar10-train + gowal2021-ddpm-1m"}
        assert {r[threat] for r in cells} == {"Linf 8/255"}
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        assert _png_size(shot)[0] >= 1000


def test_two_loss_laws_each_get_their_figures_under_their_names(tmp_path):
    true = preset("bartoldson2024-approach2")["params"]
    recs = simulate_runs(true, n_values=(1e6, 4e6), d_values=(1e6, 4e6), fids=(2.0,),
                         noise=0.01, curve_points=2, seed=3)
    named = preset("bartoldson2024-approach2")  # as --law loads it: named
    fitted = {k: v for k, v in preset("bartoldson2024-approach2-rounded").items()
              if k != "name"}  # a fit record's layout: no name
    summary = build_report(recs, tmp_path / "rep", laws=[named, fitted])
    assert summary["law_names"] == ["bartoldson2024-approach2", "Approach 2 (adv_loss)"]
    assert set(summary["drawn_on"]["bartoldson2024-approach2"]) >= {
        "law_fit.png", "predicted_vs_actual.png"}
    assert set(summary["drawn_on"]["Approach 2 (adv_loss)"]) >= {
        "law_fit_2.png", "predicted_vs_actual_2.png"}
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "bartoldson2024-approach2: Approach 2 (adv_loss)" in page


def test_quiet_report_and_fit_write_nothing_on_stderr(deb, tmp_path):
    d, _ = deb
    _, r = _report(d, tmp_path / "rep", "-q")
    assert r.stderr == ""
    r = CliRunner().invoke(app, ["fit", str(d / "runs.jsonl"), "--approach", "power-law",
                                 "--bootstrap", "0", "--filter", "aa_acc > 0", "-q",
                                 "-o", str(tmp_path / "f.json")])
    assert r.exit_code == 0, r.output
    assert r.stderr == "" and (tmp_path / "f.json").is_file()


def test_verbose_commands_say_what_they_read(deb, tmp_path):
    d, recs = deb
    n = len(recs)
    _, r = _report(d, tmp_path / "rep", "-v")
    assert f"{n} records from 40 runs" in r.stderr
    r = CliRunner().invoke(app, ["records", "table", str(d / "runs.jsonl"), "-v"])
    assert r.exit_code == 0 and f"{n} records from 40 runs" in r.stderr
    r = CliRunner().invoke(app, ["fit", str(d / "runs.jsonl"), "--approach", "power-law",
                                 "--bootstrap", "0", "--filter", "aa_acc > 0", "-v"])
    assert r.exit_code == 0 and f"{n} records from 40 runs" in r.stderr
    r = CliRunner().invoke(app, ["records", "table", str(d / "runs.jsonl")])
    assert "records from" not in r.stderr  # the count is -v's


def test_records_table_of_attack_records_alone_says_why_it_is_empty(deb, tmp_path):
    d, recs = deb
    attacks = tmp_path / "attacks.jsonl"
    attacks.write_text("".join(dumps(r) + "\n" for r in recs if r["kind"] == "attack"))
    r = CliRunner().invoke(app, ["records", "table", str(attacks)])
    assert r.exit_code == 0
    assert r.stdout.count("\n") == 1  # the header
    assert "no train.eval records: a row is one training run" in r.stderr
    assert "attack records here join a run by its run_id" in r.stderr
    r = CliRunner().invoke(app, ["records", "table", str(attacks), "-q"])
    assert r.stderr == ""


def test_runs_rows_carry_synthetic_data_dataset_and_threat_model():
    ev = {"kind": "train.eval", "run_id": "r", "params": 10, "samples_seen": 100,
          "eps": 8 / 255, "final": True,
          "data": [{"path": "data/cifar10-train.h5", "source": "cifar10-train", "weight": 1,
                    "n": 50, "fid": None},
                   {"path": "syn/edm-1m.h5", "source": "synthetic", "weight": 1, "n": 50,
                    "fid": 2.1}]}
    attack = {"kind": "attack", "run_id": "r", "attack": "aa-standard", "eps": 0.5,
              "norm": "L2", "robust_acc": 0.4}
    (row,) = run_rows([ev, attack])
    assert row["synthetic"] is True and row["dataset"] == "cifar10-train + edm-1m"
    assert (row["norm"], row["eps"]) == ("L2", 0.5)  # the attack's threat model
    assert threat_model(ev) == ("Linf", 8 / 255) and threat_text("Linf", 8 / 255) == \
        "Linf 8/255"
    assert threat_text("L2", 0.5) == "L2 0.5" and threat_text(None, None) is None
    real = {**ev, "data": ev["data"][:1]}
    (row,) = run_rows([real])
    assert row["synthetic"] is False and row["dataset"] == "cifar10-train"
    assert dataset_name({"data": [{"source": "cifar10-train"}]}) == "cifar10-train"
    assert dataset_name({}) is None
    json.dumps(row)
