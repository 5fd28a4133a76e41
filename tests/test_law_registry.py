"""Registry-driven tests of the law approaches, as timm parametrises over ``list_models()``.

Every registered approach fits simulated runs, records its own options in the provenance,
refuses another approach's options, and its laws reach the report figures it names. A law added
in one file (``tests/plugins/median_law.py``, named in ``$ADVSCALE_LAW_MODULES``) joins all of
it: ``fit --help`` shows its option, ``fit`` runs it, the report draws it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD_S

from advscale.errors import AdvscaleError
from advscale.laws import approach as registry
from advscale.laws.approach import FIGURES, get_approach, list_approaches, option_names
from advscale.laws.fit import fit_record
from advscale.laws.law import Law
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs
from advscale.report.page import build_report

PLUGINS = Path(__file__).parent / "plugins"
A2 = PRESETS["bartoldson2024-approach2-rounded"]["params"]
SIM = simulate_runs(A2, fids=[1.0, 4.0], curve_points=3, noise=0.01, seed=0)

FIGURE_FILES = {"law_of_nd": ("law_fit", "predicted_vs_actual", "optimal_vs_flops"),
                "quality": ("quality_fit_", "quality_optimal"),
                "accuracy_vs_flops": ("accuracy_vs_flops",),
                "energy_vs_flops": ("energy_vs_flops",),
                "gbr": ("gbr_predicted_vs_actual", "feature_importances")}
"""The PNGs (name prefixes) that show a law drawn on each report figure of FIGURES."""

NEEDS_OTHER_RECORDS = {"energy_vs_flops"}
"""Figures whose data the simulated train.eval records lack (energy records)."""


def smoke_fit(name: str, **options) -> dict:
    """``name`` fitted to the simulated runs: an accuracy target for a law of accuracy (the
    simulation has no attack records), one quality for a law that does not model FID."""
    appr = get_approach(name)
    target = "robust_acc" if appr.default_target == "aa_acc" else appr.default_target
    filters = [] if appr.needs.fid else ["FID == 1"]
    return fit_record(records=SIM, approach=name, target=target, filters=filters, n_boot=0,
                      exclusion=False, full_grid=False, **options)


@pytest.fixture
def median(monkeypatch):
    """The one-file median law registered for this test only."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_SPELLINGS", dict(registry._SPELLINGS))
    runpy.run_path(str(PLUGINS / "median_law.py"))
    return get_approach("median")


def test_figures_named_by_approaches_exist():
    assert set(FIGURE_FILES) == set(FIGURES)
    for name in list_approaches():
        assert set(get_approach(name).figures) <= set(FIGURES), name


@pytest.mark.parametrize("name", list_approaches())
def test_every_approach_fits_and_records_its_options(name):
    appr = get_approach(name)
    rec = smoke_fit(name)
    assert rec["kind"] == "fit" and rec["form"] == name and rec["approach"] == appr.option
    config = rec["provenance"]["config"]
    defaults = dataclasses.asdict(appr.make_options()) if appr.Options else {}
    assert {k: config[k] for k in option_names(type(appr))} == defaults
    if appr.predictive:
        assert Law(rec).params.keys() == set(appr.params)
    json.dumps(rec)  # a record is JSON


@pytest.mark.parametrize("name", list_approaches())
def test_every_approach_refuses_options_it_does_not_own(name):
    appr = get_approach(name)
    others = {o for other in list_approaches() for o in option_names(type(get_approach(other)))}
    for key in sorted(others - set(option_names(type(appr)))):
        with pytest.raises(AdvscaleError, match=f"^{key} applies to approach") as e:
            appr.make_options({key: 1})
        assert e.value.field == f"{key},approach"
    with pytest.raises(AdvscaleError, match="is not an option of approach"):
        appr.make_options({"no_such_option": 1})


@pytest.mark.parametrize("name", list_approaches())
def test_every_approach_reaches_the_figures_it_names(name, tmp_path):
    rec = smoke_fit(name)
    got = build_report(SIM, tmp_path, laws=[{**rec, "name": name}])
    drawn = got["drawn_on"].get(name, [])
    for figure in get_approach(name).figures:
        if figure in NEEDS_OTHER_RECORDS:
            continue
        for prefix in FIGURE_FILES[figure]:
            assert any(png.startswith(prefix) for png in drawn), (figure, prefix, drawn)
    named = {p for f in get_approach(name).figures for p in FIGURE_FILES[f]}
    assert all(png.startswith(tuple(named)) for png in drawn), drawn


def test_a_law_in_one_file_fits_reports_and_owns_its_option(median, tmp_path):
    assert "median" in list_approaches()
    rec = smoke_fit("median", trim=0.1)
    assert rec["form"] == "median" and rec["provenance"]["config"]["trim"] == 0.1
    assert Law(rec).value(1e7, 1e7, 0.0) == pytest.approx(rec["params"]["c"])
    with pytest.raises(AdvscaleError, match="^trim applies to approach median, not 2$"):
        smoke_fit("approach2", trim=0.1)
    got = build_report(SIM, tmp_path, laws=[{**rec, "name": "median"}])
    assert "law_fit.png" in got["drawn_on"]["median"]


def run_fit(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, ADVSCALE_LAW_MODULES="median_law",
               PYTHONPATH=os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "advscale", "fit", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=HANG_GUARD_S)


def test_a_law_in_one_file_on_the_command_line():
    help_ = run_fit("--help")
    assert help_.returncode == 0, help_.stderr
    assert "Median law (--approach median)" in help_.stdout and "--trim" in help_.stdout
    assert "median" in help_.stdout.split("--approach", 1)[1].split("\n", 1)[0]
    lines = "".join(json.dumps(r) + "\n" for r in SIM)
    p = run_fit("-", "--approach", "median", "--trim", "0.2", "-B", "0", stdin=lines)
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["form"] == "median" and rec["provenance"]["config"]["trim"] == 0.2
    bad = run_fit("-", "--approach", "2", "--trim", "0.2", stdin=lines)
    assert bad.returncode != 0
    assert bad.stderr.strip() == "advscale: error: --trim applies to --approach median, not 2"


def test_any_law_of_flops_reaches_the_accuracy_figure(monkeypatch, tmp_path):
    """The accuracy figure draws a law by its ``at_budget``, not by the power law's C, α."""
    import numpy as np

    from advscale.laws.approach import Approach, register_approach

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_SPELLINGS", dict(registry._SPELLINGS))

    @register_approach
    class LogLinear(Approach):
        """accuracy = a + b·log10(FLOPs)."""

        name = option = "log-linear"
        params = ("a", "b")
        default_target = "robust_acc"
        needs = get_approach("power-law").needs
        figures = ("accuracy_vs_flops",)

        def fit(self, data):
            x = np.log10([p.flops for p in data.points])
            b, a = np.polyfit(x, [p.value for p in data.points], 1)
            return {"form": self.name, "quantity": "accuracy",
                    "params": {"a": float(a), "b": float(b)}, "stats": {"r2": 0.0}}

        def at_budget(self, params, flops):
            return params["a"] + params["b"] * np.log10(flops)

    rec = smoke_fit("log-linear")
    got = build_report(SIM, tmp_path, laws=[{**rec, "name": "loglin"}])
    assert got["drawn_on"]["loglin"] == ["accuracy_vs_flops.png"]
    legend = got["axes"]["accuracy_vs_flops.png"][0]["lines"]
    assert any(label.startswith("loglin: log-linear law (a=") for label in legend), legend
