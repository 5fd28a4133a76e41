"""The approach registry: one class per approach, looked up by one name, records built here."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import HANG_GUARD_S

from advscale.errors import AdvscaleError
from advscale.laws import approach as registry
from advscale.laws.approach import (
    Approach,
    FitData,
    get_approach,
    list_approaches,
    register_approach,
)
from advscale.laws.fit import fit_law, fit_record
from advscale.laws.law import Law
from advscale.laws.predict import predict_one, prediction_record
from advscale.laws.presets import PRESETS, preset
from advscale.laws.simulate import simulate_runs

A2 = PRESETS["bartoldson2024-approach2-rounded"]["params"]


def test_every_approach_has_one_name_and_its_spellings():
    assert list_approaches() == ("approach1", "approach2", "approach3", "gbr", "power-law")
    for name, option in (("approach1", "1"), ("approach2", "2"), ("approach3", "3"),
                         ("power-law", "power-law"), ("gbr", "gbr")):
        appr = get_approach(name)
        assert appr.name == name and appr.option == option
        assert get_approach(option) is appr
    with pytest.raises(AdvscaleError, match=r"approach '4': choose from 1, 2, 3, gbr"):
        get_approach("4")


def test_what_each_approach_answers():
    answers = {name: {op for op in ("predict", "at_budget", "asymptote", "optimal", "tradeoff",
                                    "derived") if get_approach(name).supports(op)}
               for name in list_approaches()}
    full = {"predict", "asymptote", "optimal", "tradeoff", "derived"}
    assert answers == {"approach1": {"optimal", "derived"}, "approach2": full,
                       "approach3": full, "power-law": {"at_budget"}, "gbr": set()}
    with pytest.raises(AdvscaleError, match="^a power-law law has no N, D → ∞ asymptote$"):
        get_approach("power-law").asymptote({"C": 1.0, "alpha": 0.1})
    with pytest.raises(AdvscaleError, match="not a law to predict"):
        get_approach("gbr").optimal({}, 1e20)


def test_long_and_short_spellings_fit_the_same_law():
    recs = simulate_runs(A2, fids=[1.0, 4.0], noise=0.002, seed=1)
    short = fit_law(records=recs, approach="2", n_boot=0, full_grid=False, exclusion=False)
    long = fit_law(records=recs, approach="approach2", n_boot=0, full_grid=False,
                   exclusion=False)
    assert short == long
    assert short["approach"] == "2" and short["form"] == "approach2"


def test_law_documents_load_by_their_form():
    doc = preset("bartoldson2024-approach2")
    law = Law(doc)
    assert law.form == "approach2" and law.approach is get_approach("2")
    with pytest.raises(AdvscaleError, match="unknown form 'approach9'"):
        Law(dict(doc, form="approach9"))
    with pytest.raises(AdvscaleError, match="'params' must give numbers for A, B, E"):
        Law(dict(doc, params={"A": 1.0}))


def test_records_are_built_by_the_library(tmp_path):
    recs = simulate_runs(A2, fids=[1.0, 4.0], noise=0.002, seed=1)
    rec = fit_record(records=recs, approach="2", n_boot=0, full_grid=False, exclusion=False,
                     filters=["fid < 8"], command="test")
    assert rec["kind"] == "fit" and rec["provenance"]["command"] == "test"
    config = rec["provenance"]["config"]
    assert config["approach"] == "2" and config["filter"] == ["fid < 8"]
    assert config["bootstrap"] == 0 and config["coarse_grid"] is True
    assert rec["provenance"]["seed"] == 0
    law = Law.load("bartoldson2024-approach2")
    law.set_flops_per_param_sample(3000)
    pred = prediction_record(law, {"flops": 1e21}, accuracy=True)
    assert pred["kind"] == "prediction" and pred["flops_per_param_sample"] == 3000
    assert pred["provenance"]["config"] == {"law": "bartoldson2024-approach2",
                                            "accuracy": True, "acc_map": "auto",
                                            "flops_per_param_sample": 3000.0}
    with pytest.raises(AdvscaleError, match="must be > 0"):
        law.set_flops_per_param_sample(0)


def test_a_new_approach_is_one_registered_class(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_SPELLINGS", dict(registry._SPELLINGS))

    @register_approach
    class Mean(Approach):
        """The mean loss, whatever N and D: the dullest law of N, D, FID."""

        name = "mean"
        option = "mean"
        params = ("c",)
        inputs = "ndf"

        def fit(self, data: FitData) -> dict:
            c = float(np.mean([p.value for p in data.points]))
            return {"form": self.name, "quantity": "loss", "params": {"c": c},
                    "stats": {"r2": 0.0}}

        def predict(self, params, n, d, fid=0.0):
            return np.full(np.shape(n), params["c"])

    recs = simulate_runs(A2, fids=[1.0], noise=0.0)
    out = fit_law(records=recs, approach="mean", n_boot=0)
    assert out["approach"] == "mean" and out["n_points"] == 30
    pred = predict_one(Law(out), {"n": 1e7, "d": 1e7})
    assert pred["loss"] == pytest.approx(np.mean([r["adv_loss"] for r in recs]))
    assert "loss_inf" not in pred  # no asymptote: not asked for
    with pytest.raises(ValueError, match="taken"):
        register_approach(type("Other", (Mean,), {"name": "other", "option": "2"}))


def test_laws_import_light():
    code = ("import sys, advscale.laws.law, advscale.laws.predict, advscale.laws.fit; "
            "print(sorted(m for m in ('scipy.optimize', 'sklearn', 'matplotlib', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=HANG_GUARD_S, check=True)
    assert out.stdout.strip() == "[]"
