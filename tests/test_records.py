"""JSONL records: layout, provenance, strict JSON, and readers' error messages."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advscale import __version__
from advscale.errors import AdvscaleError
from advscale.records import (
    KINDS,
    SCHEMA_VERSION,
    SCHEMAS,
    STRICT_ENV,
    RecordError,
    append_record,
    dumps,
    loads_all,
    make_record,
    read_records,
    strict,
    validate,
    write_record,
)
from advscale.records.runs import build_runs, iter_tagged, read_runs
from advscale.report.runs import group_runs


def test_make_record_has_header_provenance_and_payload():
    rec = make_record("flops", {"params": np.int64(5), "train_flops": np.float32(2.5)},
                      command="advscale count-flops", config={"model": "wrn-10-1"}, seed=3,
                      check=False)
    assert rec["kind"] == "flops" and rec["schema"] == SCHEMA_VERSION
    prov = rec["provenance"]
    assert prov["advscale_version"] == __version__
    assert prov["command"] == "advscale count-flops"
    assert prov["config"] == {"model": "wrn-10-1"} and prov["seed"] == 3
    assert prov["time_utc"].endswith("Z") and prov["host"]
    assert rec["params"] == 5 and isinstance(rec["params"], int)
    assert rec["train_flops"] == 2.5


def test_payload_cannot_shadow_header():
    with pytest.raises(ValueError):
        make_record("x", {"kind": "y"})


def test_non_finite_numbers_become_null_and_lines_are_strict_json():
    line = dumps(make_record("x", {"a": math.nan, "b": [math.inf, 1.0]}, check=False))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["a"] is None and obj["b"] == [None, 1.0]


def test_write_and_read_roundtrip_with_unknown_fields_kept(tmp_path):
    buf = io.StringIO()
    write_record(make_record("train.eval", {"robust_acc": 0.5, "new_field": [1]}, check=False),
                 buf)
    write_record(make_record("flops", {"params": 1}, check=False), buf)
    path = tmp_path / "r.jsonl"
    path.write_text(buf.getvalue() + "\n")  # blank line tolerated
    recs = list(read_records(path))
    assert [r["kind"] for r in recs] == ["train.eval", "flops"]
    assert recs[0]["new_field"] == [1]
    assert [r["kind"] for r in read_records([path], kinds=["flops"])] == ["flops"]


def test_stdin_dash(tmp_path):
    text = dumps(make_record("fit", {"a": 1}, check=False)) + "\n"
    recs = list(read_records("-", stdin=io.StringIO(text)))
    assert recs[0]["a"] == 1


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(dumps(make_record("x", {}, check=False)) + "\n{not json\n")
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: not valid JSON"):
        list(read_records(path))


@pytest.mark.parametrize(
    "line, message",
    [("[1, 2]", "must be a JSON object"), ('{"a": 1}', "no 'kind'"),
     ('{"kind": "x", "schema": 999}', "newer than this advscale")],
)
def test_invalid_records(line, message):
    with pytest.raises(RecordError, match=message):
        loads_all(line)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AdvscaleError, match="no such records file"):
        list(read_records(tmp_path / "nope.jsonl"))


def test_append_record_is_append_only(tmp_path):
    path = tmp_path / "sub" / "log.jsonl"
    append_record(path, make_record("x", {"i": 1}, check=False))
    append_record(path, make_record("x", {"i": 2}, check=False))
    assert [r["i"] for r in read_records(path)] == [1, 2]


# -- schemas ------------------------------------------------------------------------------------
def _report_payload(**kw):
    base = {"report": "r/report.html", "figures": ["r/a.png"], "runs": 2, "laws": 1,
            "held_out": []}
    base.update(kw)
    return base


def test_the_suite_runs_in_strict_mode():
    assert os.environ.get(STRICT_ENV) == "1" and strict()  # set by tests/conftest.py


@pytest.mark.parametrize("change, message", [
    ({"runs": "2"}, r"report record field 'runs' has type str, expected int"),
    ({"runs": None}, r"field 'runs' is null"),
    ({"runs": True}, r"field 'runs' has type bool"),
    ({"laws": 1.5}, r"field 'laws' has type float"),
])
def test_invalid_record_fails_in_strict_mode(change, message):
    with pytest.raises(RecordError, match=message):
        make_record("report", _report_payload(**change))
    rec = make_record("report", _report_payload(**change), check=False)  # a hand-made record
    with pytest.raises(RecordError, match=message):
        validate(rec)


def test_schema_rules_required_fields_unknown_kinds_and_extras(monkeypatch):
    payload = _report_payload()
    del payload["held_out"]
    with pytest.raises(RecordError, match="report record lacks required field 'held_out'"):
        make_record("report", payload)
    with pytest.raises(RecordError, match="unknown record kind 'no.such'"):
        make_record("no.such", {})
    rec = make_record("report", _report_payload(new_field={"any": "thing"}))  # extras allowed
    assert rec["new_field"] == {"any": "thing"}
    with pytest.raises(RecordError, match=r"^<x>:3: record has no 'provenance' object"):
        validate({"kind": "report", "schema": 1, **_report_payload()}, where="<x>:3")
    monkeypatch.delenv(STRICT_ENV)  # production: writers do not check
    assert not strict()
    assert make_record("no.such", {"a": 1})["a"] == 1
    with pytest.raises(RecordError):
        make_record("no.such", {}, check=True)


def _train_eval(**kw):
    base = {"run_id": "r", "model": "wrn-10-1", "activation": "silu", "params": 10,
            "loss": "trades", "beta": 5.0, "pgd_steps": 1, "eps": 8 / 255, "ema_decay": 0.995,
            "batch_size": 2, "lr": 0.1, "step": 1, "samples_seen": 2, "samples_unique": 2,
            "data": [], "fid": None, "train_flops": 20.0, "train_flops_per_sample": 10.0,
            "wall_s": 1.0, "train_loss": 2.0, "eval_n": 4, "eval_attack": "pgd-cw-40",
            "clean_acc": 0.5, "robust_acc": 0.25, "adv_loss": 2.5, "final": True}
    base.update(kw)
    return make_record("train.eval", base, command="test", check=False)


def test_train_eval_schema_rules():
    validate(_train_eval())
    for change, msg in [({"robust_acc": 1.5}, "not a fraction"), ({"params": "10"}, "type"),
                        ({"final": None}, "'final' is null"), ({"eps": 0.0}, "eps"),
                        ({"train_flops": 21.0}, "train_flops !="),
                        ({"samples_unique": 3}, "samples_unique exceeds"),
                        ({"data": [{"path": "a.h5"}]}, "data entries"),
                        ({"wall_s": math.inf}, "not finite")]:
        rec = _train_eval()
        rec.update(change)  # after make_record, which would turn inf into null
        with pytest.raises(RecordError, match=msg):
            validate(rec)
    rec = _train_eval()
    del rec["adv_loss"]
    with pytest.raises(RecordError, match="lacks required field 'adv_loss'"):
        validate(rec)
    assert set(SCHEMAS["train.eval"].required) >= {"run_id", "params", "samples_seen", "final"}


def _formats_md() -> str:
    return (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text()


def test_every_kind_is_documented_and_the_docs_table_matches_schemas():
    text = _formats_md()
    m = re.search(r"^### Record kinds\n(.*?)(?=^#{2,3} )", text, re.S | re.M)
    assert m, "docs/formats.md has no 'Record kinds' section"
    table = re.findall(r"^\| `([a-z][a-z.]*)` \|", m.group(1), re.M)
    assert sorted(table) == sorted(SCHEMAS) == sorted(KINDS)
    headings = re.findall(r"^#{2,3} (.*)$", text, re.M)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # code blocks aside
    documented = set(re.findall(r"`([^`]+)`", prose))
    for kind, schema in SCHEMAS.items():
        assert any(f"`{kind}`" in h for h in headings), f"no section for {kind}"
        missing = [f.name for f in schema.fields if f.name not in documented]
        assert not missing, f"{kind}: fields not in docs/formats.md: {missing}"


def test_records_layers_import_no_heavy_libraries():
    code = ("import sys, advscale.records, advscale.records.runs, advscale.laws.data, "
            "advscale.report.runs; print(sorted(m for m in ('torch', 'h5py', 'matplotlib', "
            "'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# -- records -> runs ------------------------------------------------------------------------------
def _energy(**kw):
    prov_config = kw.pop("config", None)
    base = {"basis": "estimated", "measured": False, "notice": "ESTIMATED, NOT MEASURED",
            "mode": "flops", "duration_s": 1.0, "devices": [], "it_energy_kwh": 1.0,
            "measured_energy_kwh": 0.0, "estimated_energy_kwh": 1.0, "pue": 1.0,
            "facility_energy_kwh": 1.0, "usd_per_kwh": 1.0, "cost_usd": 1.0,
            "co2_g_per_kwh": 1.0, "co2_kg": 0.001, "figures": {}, "assumptions": {},
            "unavailable": {}}
    base.update(kw)
    return make_record("energy", base, command="test", config=prov_config)


def test_one_joining_rule_for_fit_and_report(tmp_path):
    a = [_train_eval(run_id="a", samples_seen=2, final=False),
         _train_eval(run_id="a", samples_seen=1, samples_unique=1, train_flops=10.0)]
    b = [_train_eval(run_id="b", params=20)]
    e_after_a = _energy(cost_usd=1.0)              # no run_id: the run before it in the file
    e_named = _energy(cost_usd=2.0, run_id="a")    # named
    e_config = _energy(cost_usd=3.0, config={"run_id": "b"})  # named by its provenance
    f1 = tmp_path / "one.jsonl"
    f1.write_text("".join(dumps(r) + "\n" for r in [*a, e_after_a, *b, e_named, e_config]))
    e_first = _energy(cost_usd=4.0)                # first line of another file: no run
    f2 = tmp_path / "two.jsonl"
    f2.write_text(dumps(e_first) + "\n" + dumps(_report_payload_record()) + "\n")
    table = read_runs([f1, f2])
    assert list(table.runs) == ["a", "b"] and table.n_records == 8
    ra, rb = table.runs["a"], table.runs["b"]
    assert [p["samples_seen"] for p in ra.points] == [1, 2]  # by samples seen
    assert ra.final["samples_seen"] == 2 and ra.final_eval().rec["final"] is True
    assert [e["cost_usd"] for e in ra.energy] == [1.0, 2.0]
    assert [e["cost_usd"] for e in rb.energy] == [3.0]
    assert [t.where for t in table.orphans] == [f"{f2}:1"]
    assert sorted(table.unjoined) == ["energy", "report"]
    # the report reads the same table (tagged records keep their files)
    runs, unjoined = group_runs(iter_tagged([f1, f2]))
    assert [(r.run_id, [e["cost_usd"] for e in r.energy]) for r in runs] == [
        ("a", [1.0, 2.0]), ("b", [3.0])]
    assert runs[0].params == 10 and unjoined["report"][0]["kind"] == "report"


def _report_payload_record():
    return make_record("report", _report_payload())


def test_attack_records_join_by_run_id_in_any_order():
    atk = {"kind": "attack", "run_id": "a", "attack": "aa-standard", "robust_acc": 0.2}
    stray = {"kind": "attack", "run_id": None, "attack": "aa-standard", "robust_acc": 0.1}
    table = build_runs([atk, _train_eval(run_id="a"), stray])
    assert table.runs["a"].attack_acc("aa-standard") == 0.2
    assert [t.where for t in table.orphans] == ["<records>:3"]
    with pytest.raises(AdvscaleError, match=r"<records>:1: train\.eval record has no 'run_id'"):
        build_runs([_train_eval(run_id=None)])
