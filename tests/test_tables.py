"""`advscale records import|table`: results tables in, one row per run out, unit checks."""

from __future__ import annotations

import csv
import json
import math
from importlib import resources

import numpy as np
import pytest
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.errors import AdvscaleError
from advscale.records import dumps, loads_all, make_record, validate
from advscale.records.rows import run_rows, to_dataframe
from advscale.records.runs import build_runs
from advscale.records.tables import import_table, load_map, read_table, tomllib

DEBENEDETTI_COLUMNS = (
    "train_loss,train_emissions,train_flops,train_electricity_cost,eval_loss,train_acc,"
    "train_robust_acc,pgd40_robust_acc,epochs,model,model_parameters,synthetic_data,at,"
    "at_steps,aa_robust_acc,eval_acc").split(",")
BARTOLDSON_COLUMNS = ("config,model,data_source,FID,params,data,data_precise,flops,"
                      "train_fraction,CW_test_loss,CW_test_acc,auto_attack").split(",")
TRUE_C, TRUE_ALPHA = 50.86, 0.01  # percent and TFLOPs, as the paper states them


def debenedetti_rows(n: int = 40, zeros: int = 4, seed: int = 0) -> list[dict]:
    """Rows of results.csv's layout whose best AutoAttack accuracy follows the paper's law."""
    rng = np.random.default_rng(seed)
    models = [("wide_resnet28_10", 36479194), ("wide_resnet34_20_dm", 184531674),
              ("wide_resnet70_16", 266796506)]
    rows = []
    for i in range(n):
        model, params = models[i % 3]
        epochs = (110, 400)[i % 2]
        # pairs of runs at one budget: the even one on the law, the odd one below it
        total = 10 ** (5.0 + 2.0 * (i // 2) / (n // 2))
        per_epoch_tflops = total / epochs
        aa = TRUE_C * total ** TRUE_ALPHA * (1 - (0.05 + 0.1 * rng.random()) * (i % 2))
        rows.append({
            "train_loss": 0.9, "train_emissions": 0.8, "train_flops": per_epoch_tflops,
            "train_electricity_cost": 2.5e-6 * per_epoch_tflops, "eval_loss": 0.45,
            "train_acc": 95.0, "train_robust_acc": 80.0, "pgd40_robust_acc": aa + 3,
            "epochs": epochs, "model": model, "model_parameters": params,
            "synthetic_data": bool(i % 3 == 1), "at": ("pgd", "trades")[i % 2],
            "at_steps": (1, 2, 5, 7, 10)[i % 5],
            "aa_robust_acc": 0.0 if i % 2 and i < 2 * zeros else aa,
            "eval_acc": 88.0})
    return rows


def bartoldson_rows() -> list[dict]:
    rows = []
    for cfg, model, n_m, d_m in (("cfgA", "wrn-28-10-swish", 36.5, 10.0),
                                 ("cfgB", "wrn-70-16-swish", 266.8, 20.0)):
        for frac, aa in ((0.5, None), (0.75, None), (1.0, 60.5)):
            rows.append({"config": cfg, "model": model, "data_source": "dg20", "FID": 1.8,
                         "params": n_m, "data": d_m, "data_precise": d_m * 1.024,
                         "flops": 7822 * n_m * 1e6 * d_m * 1.024e6 * frac,
                         "train_fraction": frac, "CW_test_loss": 0.9 - 0.1 * frac,
                         "CW_test_acc": 0.55 + 0.1 * frac, "auto_attack": aa})
    return rows


def write_csv(path, rows, sep=","):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=sep)
        w.writeheader()
        w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return path


def _doc(name: str) -> dict:
    """A built-in map as a dict, to edit in a test."""
    path = resources.files("advscale.records") / "maps" / f"{name}.toml"
    return tomllib.loads(path.read_text())


def _timm_doc() -> dict:
    return _doc("timm-adv-training")


@pytest.fixture
def deb_csv(tmp_path):
    return write_csv(tmp_path / "results.csv", debenedetti_rows())


def test_timm_adv_training_map_converts_units_and_records_provenance(deb_csv):
    recs = import_table(deb_csv, "timm-adv-training")
    kinds = [r["kind"] for r in recs]
    assert kinds.count("train.eval") == kinds.count("attack") == kinds.count("energy") == 40
    for r in recs:
        validate(r)
    row = debenedetti_rows()[5]
    ev, at, en = recs[15:18]
    assert ev["params"] == row["model_parameters"] and ev["samples_seen"] == row["epochs"] * 50000
    assert math.isclose(ev["train_flops"], row["train_flops"] * 1e12 * row["epochs"])
    assert math.isclose(ev["clean_acc"], 0.88) and math.isclose(at["robust_acc"],
                                                                row["aa_robust_acc"] / 100)
    assert ev["loss"] == "trades" and ev["beta"] == 5.0 and ev["pgd_steps"] == 1
    assert ev["activation"] == "relu" and ev["ema_decay"] == 0.995  # row 5: the 400-epoch arm
    dm = recs[3]  # row 1: wide_resnet34_20_dm
    assert dm["activation"] == "swish" and dm["ema_decay"] > 0 and "activation" in dm[
        "imported"]["derived"]
    assert at["run_id"] == ev["run_id"] == en["run_id"] and at["attack"] == "aa-standard"
    assert en["basis"] == "estimated" and en["measured"] is False and "300 W" in en[
        "estimate_source"]
    assert math.isclose(en["cost_usd"], row["train_electricity_cost"] * row["epochs"])
    assert math.isclose(en["facility_energy_kwh"], en["cost_usd"] / 0.12)
    cfg = ev["provenance"]["config"]
    assert cfg["row"] == 5 and cfg["map"] == "timm-adv-training" and len(cfg["table_sha256"]) == 64
    assert "batch_size" in ev["imported"]["unknown"] and ev["batch_size"] is None


def test_timm_map_ema_follows_the_400_epoch_arm_not_the_model_name(tmp_path):
    """The sweep (scripts/job.sh, ema_arguments) crosses every model with EMA + 390 (+10 warmup)
    epochs or neither: EMA is the 400-epoch arm, decay 0.995; `_dm` is only the architecture."""
    rows = []
    for i, (model, epochs) in enumerate([("wide_resnet28_10", 110), ("wide_resnet28_10", 400),
                                         ("wide_resnet28_10_dm", 110),
                                         ("wide_resnet28_10_dm", 400)]):
        rows.append({**debenedetti_rows(4)[i], "model": model, "epochs": epochs})
    recs = [r for r in import_table(write_csv(tmp_path / "results.csv", rows),
                                    "timm-adv-training") if r["kind"] == "train.eval"]
    ema = [r["ema_decay"] for r in recs]
    act = [r["activation"] for r in recs]
    assert ema == [0.0, 0.995, 0.0, 0.995] and act == ["relu", "relu", "swish", "swish"]
    assert [e > 0 for e in ema] != [a == "swish" for a in act]  # two features, not one
    assert [r["epochs"] for r in recs] == [110, 400, 110, 400]
    assert [r["cutmix"] for r in recs] == [0.0, 1.0, 0.0, 1.0]
    notes = recs[0]["imported"]["derived"]
    assert "scripts/job.sh:6" in notes["ema_decay"] and "sweep-cifar10.yaml:82" in notes[
        "ema_decay"] and "create_csv.py:77" in notes["epochs"]
    assert "wide_resnet_deepmind.py" in notes["activation"]
    table = run_rows(recs)
    assert [r["epochs"] for r in table] and {r["epochs"] for r in table} == {110, 400}


def test_builtin_maps_are_discovered_from_their_folder():
    from advscale.records.tables import BUILTIN_MAPS, builtin_maps

    folder = resources.files("advscale.records") / "maps"
    assert BUILTIN_MAPS == builtin_maps() == tuple(sorted(
        p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))
    for name in BUILTIN_MAPS:
        m = load_map(name)
        assert m.origin == f"builtin:{name}" and len(m.sha256) == 64
        for sec in m.sections.values():  # every inference in a built-in map says its source
            for spec in sec.values():
                if isinstance(spec, dict) and ("match" in spec or "map" in spec
                                               or "value" in spec):
                    assert spec.get("note"), (name, spec)


def test_bartoldson_map_one_record_per_checkpoint(tmp_path):
    path = write_csv(tmp_path / "AT_scaling_law_data.csv", bartoldson_rows())
    recs = import_table(path, "bartoldson2024")
    evals = [r for r in recs if r["kind"] == "train.eval"]
    attacks = [r for r in recs if r["kind"] == "attack"]
    assert len(evals) == 6 and len(attacks) == 2  # auto_attack only on the final rows
    e = evals[1]
    assert e["run_id"] == "cfgA" and e["params"] == 36_500_000
    assert e["samples_seen"] == round(10.0 * 1.024e6 * 0.75) and e["final"] is False
    assert evals[2]["final"] is True and e["fid"] == 1.8 and e["activation"] == "swish"
    assert e["adv_loss"] == pytest.approx(0.825) and e["robust_acc"] == pytest.approx(0.625)
    assert attacks[0]["robust_acc"] == pytest.approx(0.605)
    table = build_runs(recs)
    assert len(table.runs) == 2 and not table.orphans
    assert table.runs["cfgB"].attack_acc("aa-standard") == pytest.approx(0.605)


@pytest.mark.parametrize("ext,sep", [(".tsv", "\t"), (".jsonl", None)])
def test_tsv_and_json_lines_read_like_csv(tmp_path, deb_csv, ext, sep):
    rows = debenedetti_rows()
    path = tmp_path / f"results{ext}"
    if sep:
        write_csv(path, rows, sep)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = [{k: v for k, v in r.items() if k != "provenance"} for r in import_table(path)]
    want = [{k: v for k, v in r.items() if k != "provenance"} for r in import_table(deb_csv)]
    assert _close(got, want)


def _close(a, b) -> bool:
    """Equal, floats to 1e-12 (a CSV parser may round the last digit)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


def test_parquet_without_pyarrow_is_one_clear_line(tmp_path):
    pytest.importorskip("pandas")
    try:
        import pyarrow  # noqa: F401
        pytest.skip("pyarrow is installed")
    except ImportError:
        pass
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(AdvscaleError, match="needs pyarrow"):
        read_table(path)


@pytest.mark.parametrize("edit,message", [
    ({"robust_acc": {"column": "pgd40_robust_acc"}}, "declare unit = \"percent\""),
    ({"robust_acc": {"column": "pgd40_robust_acc", "unit": "fraction"}},
     "declared unit = \"fraction\""),
    ({"train_flops": {"column": "train_flops"}}, "unit = \"TFLOPs\""),
    ({"params": {"column": "model_parameters", "unit": "millions"}}, None),
])
def test_unit_checks_refuse_ambiguous_columns(deb_csv, edit, message):
    doc = _timm_doc()
    doc["train_eval"].update(edit)
    if message is None:  # millions of an already-plain count: allowed, values just get big
        import_table(deb_csv, doc)
        return
    with pytest.raises(AdvscaleError, match=message) as e:
        import_table(deb_csv, doc)
    assert "column '" in str(e.value) and "\n" not in str(e.value)


def test_percent_declared_on_fractions_is_refused(tmp_path):
    rows = bartoldson_rows()
    doc = _doc("bartoldson2024")
    doc["train_eval"]["robust_acc"] = {"column": "CW_test_acc", "unit": "percent"}
    with pytest.raises(AdvscaleError, match="column 'CW_test_acc'.*unit = \"fraction\""):
        import_table(write_csv(tmp_path / "b.csv", rows), doc)


def test_params_in_millions_without_a_unit_are_refused(tmp_path):
    doc = _doc("bartoldson2024")
    doc["train_eval"]["params"] = {"column": "params"}
    with pytest.raises(AdvscaleError, match="column 'params'.*unit = \"millions\""):
        import_table(write_csv(tmp_path / "b.csv", bartoldson_rows()), doc)


def test_a_map_file_of_ones_own_table(tmp_path):
    table = write_csv(tmp_path / "mine.csv", [
        {"name": "a", "N": 1.5, "flops_g": 2e9, "acc": 51.0, "clean": 0.8, "kwh": 3.0},
        {"name": "b", "N": 6.0, "flops_g": 8e9, "acc": 55.0, "clean": 0.82, "kwh": None}])
    mp = tmp_path / "mine.toml"
    mp.write_text('''name = "mine"
run_id = "run-{name}"
[train_eval]
model = "wrn-28-10"
params = { column = "N", unit = "millions" }
train_flops = { column = "flops_g", unit = "GFLOPs" }
clean_acc = { column = "clean", unit = "fraction" }
robust_acc = { column = "acc", unit = "percent" }
eval_attack = "pgd-cw-40"
[energy]
when = "kwh"
basis = "measured"
measured = true
mode = "table"
facility_energy_kwh = { column = "kwh", unit = "kWh" }
''')
    recs = import_table(table, mp)
    assert [r["kind"] for r in recs] == ["train.eval", "energy", "train.eval"]
    assert recs[0]["params"] == 1_500_000 and recs[0]["train_flops"] == 2e18
    assert recs[2]["robust_acc"] == pytest.approx(0.55)
    with pytest.raises(AdvscaleError, match="unknown key"):
        load_map({"run_id": "{name}", "train_eval": {"x": {"colum": "name"}}})
    with pytest.raises(AdvscaleError, match="not in the table"):
        import_table(table, {"run_id": "{nope}", "train_eval": {}})


def test_records_table_cli_and_to_dataframe(deb_csv, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["records", "import", str(deb_csv), "--map", "timm-adv-training",
                            "-o", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["records", "table", str(tmp_path / "r.jsonl"),
                            "-o", str(tmp_path / "runs.csv")])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert len(rows) == 40
    for col in ("run_id", "model", "params", "loss", "train_flops", "clean_acc", "aa_acc",
                "cost_usd", "energy_kwh", "energy_basis", "source"):
        assert col in rows[0]
    assert {r["energy_basis"] for r in rows} == {"estimated"}
    df = to_dataframe(str(tmp_path / "r.jsonl"))
    assert len(df) == 40 and df["aa_acc"].max() <= 1
    assert run_rows(str(tmp_path / "r.jsonl"))[0]["source"].endswith(
        tuple(f"row {i}" for i in range(40)))
    r = runner.invoke(app, ["records", "table", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith("run_id,")


def test_import_to_power_law_pipeline(deb_csv):
    runner = CliRunner()
    imported = runner.invoke(app, ["records", "import", str(deb_csv), "--map",
                                   "timm-adv-training"])
    assert imported.exit_code == 0, imported.output
    fit = runner.invoke(app, ["fit", "--approach", "power-law", "--filter", "aa_acc > 0",
                              "-B", "0"], input=imported.stdout)
    assert fit.exit_code == 0, fit.output
    (law,) = loads_all(fit.stdout)
    c, alpha = law["params"]["C"], law["params"]["alpha"]
    # fractions and FLOPs in the record; the paper's percent and TFLOPs from them
    assert alpha == pytest.approx(TRUE_ALPHA, abs=2e-3)
    assert 100 * c * 1e12 ** alpha == pytest.approx(TRUE_C, rel=0.02)


def test_import_errors_are_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["records", "import", str(tmp_path / "nope.csv")])
    assert r.exit_code != 0 and "no such table file" in r.stderr
    r = runner.invoke(app, ["records", "import", str(tmp_path / "nope.csv"), "--map", "x"])
    assert "not a built-in map" in r.stderr or "no such table" in r.stderr


def test_energy_joins_by_the_wrapped_train_commands_run_dir(tmp_path, monkeypatch):
    run_dir = tmp_path / "run1"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"run_id": "r-1"}))
    (ev,) = [r for r in import_table(write_csv(tmp_path / "b.csv", bartoldson_rows()[:1]),
                                     "bartoldson2024") if r["kind"] == "train.eval"]
    ev = {**ev, "run_id": "r-1"}
    energy = make_record("energy", {"basis": "estimated", "mode": "run",
                                    "command": ["advscale", "train", "--out", str(run_dir)]},
                         check=False)
    other = {**ev, "run_id": "r-2"}
    table = build_runs([ev, other, energy])  # after r-2's records, but names r-1's directory
    assert [t.rec for t in table.runs["r-1"].others] == [energy]
    assert not table.runs["r-2"].others
    assert dumps(energy)


def test_tables_fall_back_to_tomli_without_tomllib(monkeypatch):
    """Python 3.10 has no tomllib: the map reader uses the tomli backport (pyproject declares
    it for python < 3.11)."""
    import importlib
    import sys
    import types

    import advscale.records.tables as tables

    real = importlib.import_module("tomllib")
    fake = types.ModuleType("tomli")
    fake.loads, fake.TOMLDecodeError = real.loads, real.TOMLDecodeError
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` fails, as on 3.10
    monkeypatch.setitem(sys.modules, "tomli", fake)
    try:
        reloaded = importlib.reload(tables)
        assert reloaded.tomllib is fake
        assert reloaded.load_map("timm-adv-training").name == "timm-adv-training"
    finally:
        monkeypatch.undo()
        importlib.reload(tables)
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert "tomli>=1.1; python_version < '3.11'" in pyproject
