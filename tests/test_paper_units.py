"""The papers' units beside SI (issue 26, item 3): a power law in Debenedetti et al.'s
convention (percent, TFLOPs) in the fit record, one convention per figure (legend = caption),
and the energy panel fitted like cost and CO2."""

from __future__ import annotations

import math

import pytest
from test_tables import debenedetti_rows, write_csv

from advscale.laws.fit import fit_law
from advscale.records import make_record
from advscale.records.tables import import_table
from advscale.report.page import build_report


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    d = tmp_path_factory.mktemp("deb")
    recs = import_table(write_csv(d / "results.csv", debenedetti_rows()), "timm-adv-training")
    power = make_record("fit", fit_law(approach="power-law", records=recs, n_boot=0,
                                       filters=["aa_acc > 0"], also=["cost_usd", "co2_kg"]))
    return recs, power


def test_power_law_in_the_papers_units(deb):
    _, power = deb
    pu = power["paper_units"]
    c, alpha = power["params"]["C"], power["params"]["alpha"]
    assert pu["x_unit"] == "TFLOPs" and pu["value_unit"] == "percent"
    assert pu["C"] == pytest.approx(100 * c * 1e12 ** alpha) and pu["alpha"] == alpha
    # the fixture's truth is the paper's C = 50.86, alpha = 0.01 (percent, TFLOPs)
    assert pu["C"] == pytest.approx(50.86, rel=0.02)
    f = 3.7e18  # the same prediction in both conventions
    assert 100 * c * f ** alpha == pytest.approx(pu["C"] * (f / 1e12) ** alpha)
    cost = power["also"]["cost_usd"]
    assert pu["also"]["cost_usd"]["C"] == pytest.approx(cost["C"] * 1e12 ** cost["alpha"])


def test_one_convention_per_figure_and_the_energy_panel_is_fitted(deb, tmp_path):
    recs, power = deb
    out = build_report(recs, tmp_path / "rep", laws=[power])
    (ax,) = out["axes"]["accuracy_vs_flops.png"]
    law_label = next(t for t in ax["legend"] if t.startswith("power law "))
    formula = law_label.removeprefix("power law ")
    assert "TFLOPs" in formula and formula.endswith("(%)")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert f"the fitted power law {formula}" in page.replace("&#x27;", "'")
    panels = {a["ylabel"]: a for a in out["axes"]["energy_vs_flops.png"]}
    energy = panels["energy (kWh)"]  # not in the fit's also: fitted on its best runs here
    assert any("TFLOPs^" in t and "fitted here" in t for t in energy["legend"])
    assert any("TFLOPs^" in t for t in panels["electricity cost (USD)"]["legend"])
    assert math.isfinite(power["paper_units"]["also"]["co2_kg"]["C"])
