"""JSONL records: layout, provenance, strict JSON, and readers' error messages."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from advscale import __version__
from advscale.errors import AdvscaleError
from advscale.records import (
    SCHEMA_VERSION,
    RecordError,
    append_record,
    dumps,
    loads_all,
    make_record,
    read_records,
    write_record,
)


def test_make_record_has_header_provenance_and_payload():
    rec = make_record("flops", {"params": np.int64(5), "train_flops": np.float32(2.5)},
                      command="advscale count-flops", config={"model": "wrn-10-1"}, seed=3)
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
    line = dumps(make_record("x", {"a": math.nan, "b": [math.inf, 1.0]}))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["a"] is None and obj["b"] == [None, 1.0]


def test_write_and_read_roundtrip_with_unknown_fields_kept(tmp_path):
    buf = io.StringIO()
    write_record(make_record("train.eval", {"robust_acc": 0.5, "new_field": [1]}), buf)
    write_record(make_record("flops", {"params": 1}), buf)
    path = tmp_path / "r.jsonl"
    path.write_text(buf.getvalue() + "\n")  # blank line tolerated
    recs = list(read_records(path))
    assert [r["kind"] for r in recs] == ["train.eval", "flops"]
    assert recs[0]["new_field"] == [1]
    assert [r["kind"] for r in read_records([path], kinds=["flops"])] == ["flops"]


def test_stdin_dash(tmp_path):
    text = dumps(make_record("fit", {"a": 1})) + "\n"
    recs = list(read_records("-", stdin=io.StringIO(text)))
    assert recs[0]["a"] == 1


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(dumps(make_record("x", {})) + "\n{not json\n")
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
    append_record(path, make_record("x", {"i": 1}))
    append_record(path, make_record("x", {"i": 2}))
    assert [r["i"] for r in read_records(path)] == [1, 2]
