"""`advscale report`: figures from records and laws, the HTML page, held-out errors."""

from __future__ import annotations

import json
import struct

import pytest
from browser import chromium
from test_tables import debenedetti_rows, write_csv
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.laws.fit import fit_law
from advscale.laws.presets import preset
from advscale.laws.simulate import simulate_runs
from advscale.records import dumps, loads_all, make_record
from advscale.records.tables import import_table
from advscale.report.page import build_report

TRUE = preset("bartoldson2024-approach2")["params"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Simulated runs of a known Approach 2 law (3 N × 3 D, learning curves) and its fit."""
    d = tmp_path_factory.mktemp("study")
    recs = simulate_runs(TRUE, n_values=(1e6, 4e6, 1.6e7), d_values=(1e6, 4e6, 1.6e7),
                         fids=(2.0,), noise=0.01, curve_points=4, seed=1)
    held = recs[-1]["run_id"]
    fit_recs = [r for r in recs if r["run_id"] != held]
    law = make_record("fit", fit_law(approach="2", records=fit_recs, n_boot=0, exclusion=False))
    (d / "runs.jsonl").write_text("".join(dumps(r) + "\n" for r in recs))
    (d / "law.json").write_text(dumps(law) + "\n")
    return d, recs, law, held


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_build_report_writes_figures_and_a_self_contained_page(study, tmp_path):
    _, recs, law, _ = study
    summary = build_report(recs, tmp_path / "rep", laws=[law])
    names = sorted(p.split("/")[-1] for p in summary["figures"])
    assert names == ["accuracy_vs_flops.png", "law_fit.png", "learning_curves.png",
                     "optimal_vs_flops.png", "predicted_vs_actual.png"]
    for p in summary["figures"]:
        w, h = _png_size(tmp_path / "rep" / p.split("/")[-1])
        assert w > 300 and h > 300
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    assert "sim-n1e+06-d1e+06-fid2.0" in page and "approach" in page
    assert summary["runs"] == 9


def test_cli_report_reports_the_held_out_error(study, tmp_path):
    d, _, _, held = study
    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["report", str(d / "runs.jsonl"), "--law", str(d / "law.json"),
                                 "--held-out", held, "-o", str(out)])
    assert r.exit_code == 0, r.output
    (rec,) = loads_all(r.stdout)
    assert rec["kind"] == "report"
    (err,) = rec["held_out"]
    assert err["run_id"] == held and abs(err["rel_error"]) < 0.05  # noise is 1%
    assert f"Held-out run {held}" in r.stderr
    assert "Held-out run" in (out / "report.html").read_text()


def test_report_needs_a_law_for_held_out(study, tmp_path):
    d, _, _, held = study
    r = CliRunner().invoke(app, ["report", str(d / "runs.jsonl"), "--held-out", held,
                                 "-o", str(tmp_path / "x")])
    assert r.exit_code != 0 and "needs an Approach 2 or 3 law" in r.stderr


def test_page_renders_in_headless_chromium(study, tmp_path):
    _, recs, law, _ = study
    build_report(recs, tmp_path / "rep", laws=[law])
    for driver in chromium(tmp_path / "profile", window="1300,2400"):
        driver.get((tmp_path / "rep" / "report.html").as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);")
        assert len(images) == 5
        assert all(done and width > 300 for done, width in images), images
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        assert _png_size(shot)[0] >= 1000
    json.dumps(law)  # the law record stays plain JSON


@pytest.fixture(scope="module")
def debenedetti(tmp_path_factory):
    """Records of a Debenedetti-layout table, their power law (with cost) and a GBR fit."""
    d = tmp_path_factory.mktemp("deb")
    recs = import_table(write_csv(d / "results.csv", debenedetti_rows()), "timm-adv-training")
    power = make_record("fit", fit_law(approach="power-law", records=recs, n_boot=50,
                                       filters=["aa_acc > 0"], also=["cost_usd"]))
    return d, recs, power


def test_debenedetti_figure_axes_come_from_the_data(debenedetti, tmp_path):
    _, recs, power = debenedetti
    summary = build_report(recs, tmp_path / "rep", laws=[power])
    (ax,) = summary["axes"]["accuracy_vs_flops.png"]
    flops = [r["train_flops"] for r in recs if r["kind"] == "train.eval"]
    accs = [100 * r["robust_acc"] for r in recs if r["kind"] == "attack" and r["robust_acc"] > 0]
    assert ax["xscale"] == ax["yscale"] == "log"
    assert min(flops) / 3 < ax["xlim"][0] <= min(flops) and max(flops) <= ax["xlim"][1] < \
        3 * max(flops)
    assert min(accs) / 3 < ax["ylim"][0] <= min(accs) and max(accs) <= ax["ylim"][1] < \
        3 * max(accs)
    assert "AutoAttack (aa-standard)" in ax["ylabel"] and "FLOPs" in ax["xlabel"]
    legend = " | ".join(ax["legend"])
    assert "best per FLOPs bin" in legend and "accuracy 0" in legend
    assert "power law" in legend and "bootstrap band" in legend and "PGD-40-CW" not in legend
    (cost,) = summary["axes"]["energy_vs_flops.png"][:1]
    assert cost["ylabel"] == "electricity cost (USD)" and cost["yscale"] == "log"
    assert any("estimated" in t for t in cost["legend"]) and any("TFLOPs^" in t
                                                                 for t in cost["legend"])
    skipped = {s["figure"]: s["reason"] for s in summary["skipped"]}
    assert "Learning curves" in skipped and "Fitted law" in skipped
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "Figures left out" in page and "TRADES (β=5)" not in page and "7822" not in page


def test_energy_with_a_cost_but_no_kwh_draws_the_cost_panel(debenedetti, tmp_path):
    _, recs, _ = debenedetti
    trimmed = []
    for r in recs:
        if r["kind"] == "energy":
            r = {k: v for k, v in r.items() if "kwh" not in k and k != "co2_kg"}
        trimmed.append(r)
    summary = build_report(trimmed, tmp_path / "rep")
    axes = summary["axes"]["energy_vs_flops.png"]
    assert [a["ylabel"] for a in axes] == ["electricity cost (USD)"]


def test_report_without_laws_lists_the_law_figures_as_left_out(study, tmp_path):
    _, recs, _, _ = study
    summary = build_report(recs, tmp_path / "rep")
    names = sorted(p.split("/")[-1] for p in summary["figures"])
    assert names == ["accuracy_vs_flops.png", "learning_curves.png"]
    (lc,) = summary["axes"]["learning_curves.png"]
    losses = [r["adv_loss"] for r in recs if r.get("adv_loss")]
    assert lc["xscale"] == lc["yscale"] == "log"
    assert lc["ylim"][0] <= min(losses) and max(losses) <= lc["ylim"][1] < 2 * max(losses)
    assert "pgd" in lc["ylabel"].lower()
    (acc,) = summary["axes"]["accuracy_vs_flops.png"]
    assert "robust accuracy under" in acc["ylabel"] and acc["yscale"] == "log"


def test_law_figures_axes_and_captions_come_from_the_law(study, tmp_path):
    _, recs, law, _ = study
    summary = build_report(recs, tmp_path / "rep", laws=[law])
    (fit_ax,) = summary["axes"]["law_fit.png"]
    assert fit_ax["xlabel"] == "training samples seen D" and fit_ax["ylabel"] == "parameters N"
    ns = [r["params"] for r in recs]
    assert fit_ax["ylim"][0] < min(ns) and fit_ax["ylim"][1] > max(ns)
    opt = summary["axes"]["optimal_vs_flops.png"]
    assert [a["ylabel"] for a in opt] == ["N* (parameters)", "D* (samples)",
                                          "adv_loss at N*, D*"]
    flops = [r["train_flops"] for r in recs]
    assert opt[0]["xlim"][0] < min(flops) and opt[0]["xlim"][1] > max(flops)
    page = (tmp_path / "rep" / "report.html").read_text()
    k = law.get("flops_per_param_sample")
    assert f"{k:g}·N·D" in page and "Approach 2 (adv_loss)" in page


def test_debenedetti_report_renders_in_headless_chromium(debenedetti, tmp_path):
    _, recs, power = debenedetti
    build_report(recs, tmp_path / "rep", laws=[power])
    for driver in chromium(tmp_path / "profile", window="1300,2400"):
        driver.get((tmp_path / "rep" / "report.html").as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);")
        assert len(images) == 2
        assert all(done and width > 300 for done, width in images), images
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        assert _png_size(shot)[0] >= 1000
