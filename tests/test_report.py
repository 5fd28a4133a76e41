"""`advscale report`: figures from records and laws, the HTML page, held-out errors."""

from __future__ import annotations

import json
import struct

import pytest
from browser import chromium
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.laws.fit import fit_law
from advscale.laws.presets import preset
from advscale.laws.simulate import simulate_runs
from advscale.records import dumps, loads_all, make_record
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
                     "predicted_vs_actual.png"]
    for p in summary["figures"]:
        w, h = _png_size(tmp_path / "rep" / p.split("/")[-1])
        assert w > 300 and h > 300
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
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
        assert len(images) == 4
        assert all(done and width > 300 for done, width in images), images
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        assert _png_size(shot)[0] >= 1000
    json.dumps(law)  # the law record stays plain JSON
