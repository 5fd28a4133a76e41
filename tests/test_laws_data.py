"""From records to fit points: joins, point selection, filters, exclusion rule, clear errors."""

from __future__ import annotations

import json

import pytest

from advscale.errors import AdvscaleError
from advscale.laws.data import (
    Needs,
    apply_filters,
    collect_points,
    paper_exclusion,
    read_runs,
)
from advscale.laws.filters import RecordFilter
from advscale.laws.fit import fit_law
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs
from advscale.records import dumps, make_record

A2 = PRESETS["bartoldson2024-approach2-rounded"]["params"]


def _write(path, recs):
    path.write_text("".join(dumps(r) + "\n" for r in recs))
    return path


def _eval(**kw):
    """A complete train.eval record (it validates against the schema in strict mode)."""
    base = {"run_id": "r1", "model": "wrn-10-1", "activation": "silu", "params": 77_850,
            "loss": "trades", "beta": 5.0, "pgd_steps": 10, "eps": 8 / 255, "ema_decay": 0.995,
            "batch_size": 128, "lr": 0.2, "step": 8, "samples_seen": 1000, "data": [],
            "fid": None, "train_flops": 1e12, "train_flops_per_sample": None, "wall_s": 1.0,
            "train_loss": 1.6, "eval_n": 64, "eval_attack": "pgd-cw-40", "adv_loss": 1.5,
            "robust_acc": 0.2, "clean_acc": 0.4, "final": False}
    base.update(kw)
    base.setdefault("samples_unique", base["samples_seen"])
    return make_record("train.eval", base, command="test")


def _attack(**kw):
    """A complete attack record (counts out of n = 100 images follow the accuracies)."""
    base = {"run_id": "r1", "model": "wrn-10-1", "params": 77_850, "checkpoint": "last.st",
            "checkpoint_sha256": "0" * 64, "samples_seen": 1000, "attack": "aa-standard",
            "eps": 8 / 255, "steps": None, "step_size": None, "n": 100, "batch_size": 50,
            "chunk_size": 100, "seed": 0, "data": "test.h5", "data_sha256": "1" * 64,
            "package": "pyautoattack", "package_version": "0", "settings_key": "k",
            "clean_acc": 0.5, "robust_acc": 0.2, "per_attack_robust": None, "chunks": 1,
            "wall_s": 1.0}
    base.update(kw)
    base.update(clean_correct=round(100 * base["clean_acc"]),
                robust_correct=round(100 * base["robust_acc"]))
    return make_record("attack", base, command="t")


def test_points_final_best_all_and_fid_null_is_zero(tmp_path):
    recs = [_eval(samples_seen=0, adv_loss=2.3),  # before training: skipped (no D)
            _eval(samples_seen=1000, adv_loss=1.4),
            _eval(samples_seen=2000, adv_loss=1.2),
            _eval(samples_seen=3000, adv_loss=1.3, final=True)]
    rs = read_runs(_write(tmp_path / "m.jsonl", recs))
    final = collect_points(rs, "adv_loss", "final")
    assert [(p.d, p.value, p.fid) for p in final] == [(3000, 1.3, 0.0)]
    assert final[0].where.endswith("m.jsonl:4")
    best = collect_points(rs, "adv_loss", "best")
    assert [p.d for p in best] == [2000]
    best_acc = collect_points(rs, "robust_acc", "best")
    assert len(best_acc) == 1
    assert [p.d for p in collect_points(rs, "adv_loss", "all")] == [1000, 2000, 3000]


def test_missing_and_malformed_fields_name_the_line(tmp_path):
    good = _eval()
    no_loss = _eval(run_id="r2")
    del no_loss["adv_loss"]
    path = _write(tmp_path / "bad.jsonl", [good, no_loss])
    with pytest.raises(AdvscaleError, match=r"bad\.jsonl:2: train\.eval record lacks 'adv_loss'"):
        collect_points(read_runs(path), "adv_loss")
    big = _eval(run_id="r3")
    big["params"] = "big"  # malformed on purpose (make_record would refuse it in strict mode)
    path = _write(tmp_path / "bad2.jsonl", [good, big])
    with pytest.raises(AdvscaleError, match=r"bad2\.jsonl:2: .*'params': 'big', not a number"):
        collect_points(read_runs(path), "adv_loss")
    neg = _eval()
    neg["fid"] = -1.0
    path = _write(tmp_path / "bad3.jsonl", [neg])
    with pytest.raises(AdvscaleError, match=r"bad3\.jsonl:1: 'fid' must be >= 0"):
        collect_points(read_runs(path), "adv_loss", needs=Needs(fid=True))
    nofid = _eval()
    del nofid["fid"]
    path = _write(tmp_path / "bad4.jsonl", [nofid])
    with pytest.raises(AdvscaleError, match=r"bad4\.jsonl:1: .*lacks 'fid'"):
        collect_points(read_runs(path), "adv_loss", needs=Needs(fid=True))
    noflops = _eval()
    del noflops["train_flops"]
    path = _write(tmp_path / "bad5.jsonl", [noflops])
    with pytest.raises(AdvscaleError, match=r"bad5\.jsonl:1: .*lacks 'train_flops'"):
        collect_points(read_runs(path), "adv_loss", needs=Needs(flops=True))
    (tmp_path / "junk.jsonl").write_text(dumps(good) + "\n{not json\n")
    with pytest.raises(AdvscaleError, match=r"junk\.jsonl:2: not valid JSON"):
        read_runs(tmp_path / "junk.jsonl")
    with pytest.raises(AdvscaleError, match="no such records file"):
        read_runs(tmp_path / "nope.jsonl")


def test_train_flops_from_per_sample_field(tmp_path):
    rec = _eval(samples_seen=500, train_flops=None, train_flops_per_sample=2e6)
    del rec["train_flops"]
    pts = collect_points(read_runs(_write(tmp_path / "m.jsonl", [rec])), "adv_loss",
                         needs=Needs(flops=True))
    assert pts[0].flops == pytest.approx(1e9)


def test_attack_records_join_their_run(tmp_path):
    evals = [_eval(run_id="a", samples_seen=1000, fid=3.0),
             _eval(run_id="a", samples_seen=2000, fid=3.0, final=True, train_flops=2e12)]
    atk = _attack(run_id="a", params=77_850, samples_seen=2000, robust_acc=0.25, clean_acc=0.5)
    other = _attack(run_id="a", params=77_850, samples_seen=2000, attack="pgd-ce",
                    robust_acc=0.3)
    rs = read_runs(_write(tmp_path / "m.jsonl", [*evals, atk, other]))
    pts = collect_points(rs, "aa_acc", needs=Needs(fid=True, flops=True))
    assert len(pts) == 1
    p = pts[0]
    assert (p.value, p.fid, p.flops, p.d) == (0.25, 3.0, 2e12, 2000)
    assert p.where.endswith("m.jsonl:3") and p.rec["aa_acc"] == 0.25
    orphan = _attack(run_id=None, params=5, samples_seen=1, robust_acc=0.1)
    rs = read_runs(_write(tmp_path / "o.jsonl", [*evals, orphan]))
    with pytest.raises(AdvscaleError, match=r"o\.jsonl:3: attack record has no 'run_id'"):
        collect_points(rs, "aa_acc")
    lonely = _attack(run_id="zz", params=5, samples_seen=1, robust_acc=0.1)
    rs = read_runs(_write(tmp_path / "l.jsonl", [*evals, lonely]))
    with pytest.raises(AdvscaleError, match=r"l\.jsonl:3: .*'zz' has no train\.eval records"):
        collect_points(rs, "aa_acc")
    rs = read_runs(_write(tmp_path / "e.jsonl", evals))
    with pytest.raises(AdvscaleError, match="no usable records for target aa_acc"):
        collect_points(rs, "aa_acc")


def test_filter_expressions():
    rec = {"params": 2e6, "fid": None, "model": "wrn-16-2", "loss": "trades", "D": 1e7}
    assert RecordFilter("params >= 1e6 and loss == 'trades'")(rec)
    assert not RecordFilter("fid < 10")(rec)  # a comparison with null is false
    assert RecordFilter("fid == null")(rec)
    assert RecordFilter("model in ['wrn-16-2', 'wrn-28-4']")(rec)
    assert RecordFilter("log10(D) > 6.5 and not (params > 1e9)")(rec)
    assert not RecordFilter("missing_field * 2 > 1")(rec)
    for bad in ("__import__('os')", "params.real > 1", "lambda: 1", "(params"):
        with pytest.raises(AdvscaleError, match="filters"):
            RecordFilter(bad)


def test_paper_exclusion_rule_drops_small_models_on_big_good_data():
    recs = simulate_runs(A2, n_values=[5e7, 2e8], d_values=[5e6, 2e7], fids=[2.0, 20.0])
    pts = collect_points(read_runs(records=recs), "adv_loss", needs=Needs(fid=True))
    logs = []
    kept, dropped = paper_exclusion(pts, logs.append)
    assert dropped == ["sim-n5e+07-d2e+07-fid2.0"]
    assert len(kept) == len(pts) - 1
    assert "dropped 1 of 8 runs" in logs[0]
    kept2 = apply_filters(pts, ["FID > 5", "N > 1e8"], logs.append)
    assert {p.run_id for p in kept2} == {"sim-n2e+08-d5e+06-fid20.0", "sim-n2e+08-d2e+07-fid20.0"}
    assert "kept 4 of 8 points" in logs[1]


def test_fit_reports_exclusion_and_refuses_too_few_sizes(tmp_path):
    recs = simulate_runs(A2, n_values=[6e6, 2e7], d_values=[5e6, 1e7, 2e7, 5e7],
                         fids=[1.0, 5.0])
    with pytest.raises(AdvscaleError, match="at least 3 distinct model sizes N"):
        fit_law(records=recs, approach="2", n_boot=0, exclusion=False)
    recs = simulate_runs(A2, n_values=[6e6, 2e7, 6e7], d_values=[5e6, 1e7], fids=[1.0, 5.0])
    with pytest.raises(AdvscaleError, match="3 distinct data sizes D; got 3 N and 2 D"):
        fit_law(records=recs, approach="3", n_boot=0, exclusion=False)
    recs = simulate_runs(A2, n_values=[6e6, 2e7, 6e7], d_values=[5e6, 2e7, 5e7], fids=[2.0])
    with pytest.raises(AdvscaleError, match="at least 2 distinct nonzero FIDs"):
        fit_law(records=recs, approach="3", n_boot=0, exclusion=False)
    with pytest.raises(AdvscaleError, match="approach '4'"):
        fit_law(records=recs, approach="4")
    with pytest.raises(AdvscaleError, match="approach 1 needs training curves"):
        fit_law(records=recs, approach="1", n_boot=0)
    bad = [_eval(run_id=f"r{i}", params=1_000_000 * (i + 1),
                 samples_seen=1_000_000 * (i % 3 + 1), adv_loss=0.0, fid=1.0) for i in range(9)]
    with pytest.raises(AdvscaleError, match=r"9 of 9 points have adv_loss <= 0 \(e\.g\. "
                       r"<records>:1\).*filters 'adv_loss > 0'"):
        fit_law(records=bad, approach="2", n_boot=0)


def test_read_runs_requires_run_id(tmp_path):
    rec = _eval()
    rec["run_id"] = None
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    with pytest.raises(AdvscaleError, match=r"x\.jsonl:1: train\.eval record has no 'run_id'"):
        read_runs(path)


def test_null_targets_are_skipped_and_logged(tmp_path):
    recs = [_eval(run_id="ok", samples_seen=1000, adv_loss=1.4),
            _eval(run_id="ok", samples_seen=2000, adv_loss=None),
            _eval(run_id="ok", samples_seen=3000, adv_loss=1.2, final=True),
            _eval(run_id="diverged", samples_seen=1000, adv_loss=1.5),
            _eval(run_id="diverged", samples_seen=2000, adv_loss=None, final=True)]
    rs = read_runs(_write(tmp_path / "m.jsonl", recs))
    logs = []
    pts = collect_points(rs, "adv_loss", "final", log=logs.append)
    assert [(p.run_id, p.d) for p in pts] == [("ok", 3000)]
    assert "skipped 2 evaluations with adv_loss: null" in logs[0]
    assert "dropped 1 runs whose final adv_loss is null" in logs[0]
    pts = collect_points(rs, "adv_loss", "all")
    assert [(p.run_id, p.d) for p in pts] == [("ok", 1000), ("ok", 3000), ("diverged", 1000)]
