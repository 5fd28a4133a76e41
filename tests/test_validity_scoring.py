"""The validity rule of Bartoldson et al. 2024 (appendix G.2) on hand-worked cases, and Table 4."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from advscale.errors import AdvscaleError
from advscale.records import loads_all
from advscale.validity.advset import load_adv_set
from advscale.validity.scoring import Vote, judge, load_labels, resolve_n_eval, score_labels
from advscale.validity.store import LabelStore

LABEL, PRED = 0, 1  # true class and the model's (wrong) adversarial prediction


def H(name: str, choice: int | None, conf: str | None = "low") -> Vote:  # noqa: N802
    return Vote(name, "human", choice, conf)


def M(name: str, choice: int | None, conf: str | None = "low") -> Vote:  # noqa: N802
    return Vote(name, "machine", choice, conf)


CASES = [
    # (votes, expected status, why)
    ([H("a", 0), M("g", 0), H("b", 1), H("c", 1)], "valid",
     "exactly 2 of 4 correct, both low confidence (tie at the threshold counts)"),
    ([H("a", 0, "high"), H("b", 1), H("c", 1), M("g", 1)], "valid",
     "one human correct with high confidence outweighs a wrong majority"),
    ([M("g", 0, "high"), H("a", 1), H("b", 1), H("c", 1)], "deceptive",
     "a machine's high confidence alone is not enough; all humans share the model's class"),
    ([H("a", 0), H("b", 1), H("c", 1), M("g", 1)], "deceptive",
     "one low-confidence correct human; 2 of 3 humans chose the model's class"),
    ([H("a", 0), H("b", 1), H("c", 2), M("g", 1)], "ambiguous",
     "1 of 3 humans with the model: no majority even though the machine agrees"),
    ([H("a", 1), H("b", 2)], "ambiguous", "1 of 2 humans with the model is a tie, not a majority"),
    ([H("a", 1), H("b", 1), H("c", 2), H("d", 2)], "ambiguous", "2 of 4 is a tie"),
    ([H("a", 1, "low"), H("b", 1, "low"), H("c", 1, "low")], "deceptive",
     "a low-confidence majority on the model's class is still deceptive"),
    ([H("a", 0, "low"), H("b", 0, "low"), H("c", 1, "high")], "valid",
     "a low-confidence correct majority is valid (2 correct)"),
    ([H("a", 0, "low"), H("b", 3, "low"), H("c", 4, "high")], "ambiguous",
     "one low-confidence correct answer, others scattered"),
    ([H("a", None, None), H("b", 1), M("g", 0, "high")], "ambiguous",
     "an abstention is a rater that is not correct; 1 of 2 humans agree"),
    ([M("g", 1, "high"), M("h", 1, "high")], "ambiguous",
     "machines only: no human pool, so never deceptive under the paper's rule"),
    ([], "unrated", "no labels yet"),
]


@pytest.mark.parametrize("votes,expected,why", CASES, ids=[c[2][:40] for c in CASES])
def test_hand_worked_cases(votes, expected, why):
    v = judge(votes, LABEL, PRED)
    assert v.status == expected, why
    assert v.valid is (None if expected == "unrated" else expected == "valid")


def test_majority_of_all_raters_counts_machines():
    votes = [H("a", 1), H("b", 2), M("g", 1)]
    assert judge(votes, LABEL, PRED).status == "ambiguous"
    assert judge(votes, LABEL, PRED, majority_of="raters").status == "deceptive"
    v = judge(votes, LABEL, PRED, majority_of="raters")
    assert (v.n_pool, v.n_pool_agree_model) == (3, 2)


def test_min_raters_and_min_correct():
    two_correct = [H("a", 0), H("b", 0), H("c", 5)]
    assert judge(two_correct, LABEL, PRED, min_raters=4).status == "valid"  # already decided
    wrong = [H("a", 1), H("b", 1), H("c", 1)]
    assert judge(wrong, LABEL, PRED, min_raters=4).status == "unrated"
    assert judge(wrong, LABEL, PRED, min_raters=3).status == "deceptive"
    assert judge(two_correct, LABEL, PRED, min_correct=3).status == "ambiguous"
    assert judge([H("a", 0, "high")], LABEL, PRED, min_correct=3).status == "valid"
    with pytest.raises(AdvscaleError):
        judge([], LABEL, PRED, majority_of="everyone")


def _store(tmp_path, adv, kind):
    return LabelStore(tmp_path / "labels", adv, kind=kind)


def test_score_labels_table4(tmp_path, adv_h5):
    """12 attacked images, 10 fooled (M = 2); three humans and one machine."""
    adv = load_adv_set(adv_h5)
    # row r has label r % 10, model prediction (r + 1) % 10
    answers = {
        # row: {rater: (choice, confidence)}
        0: {"ann": (0, "high"), "bob": (5, "low"), "cat": (1, "low"), "gpt": (1, "high")},
        1: {"ann": (2, "low"), "bob": (2, "high"), "cat": (2, "low"), "gpt": (1, "high")},
        2: {"ann": (2, "low"), "bob": (3, "low"), "cat": (4, "low"), "gpt": (7, "high")},
        3: {"ann": (3, "low"), "bob": (4, "low"), "cat": (3, "low"), "gpt": (4, "low")},
        4: {"ann": (5, "low"), "bob": (5, "low"), "cat": (4, "low"), "gpt": (5, "high")},
    }
    with _store(tmp_path, adv, "human") as hs, _store(tmp_path, adv, "machine") as ms:
        for row, by in answers.items():
            for rater, (choice, conf) in by.items():
                (ms if rater == "gpt" else hs).add(rater, row, "adv", choice, conf)
                if rater != "gpt":
                    hs.add(rater, row, "clean", row % 10, "high")
    records = load_labels([tmp_path / "labels"])
    s = score_labels(records, adv, min_raters=4)
    status = {im["row"]: im["status"] for im in s.images}
    assert status == {0: "valid", 1: "deceptive", 2: "ambiguous", 3: "valid", 4: "deceptive",
                      5: "unrated", 6: "unrated", 7: "unrated", 8: "unrated", 9: "unrated"}
    sm = s.summary
    assert (sm["n_eval"], sm["n_fooled"], sm["n_model_correct"]) == (12, 10, 2)
    assert (sm["n_valid"], sm["n_invalid"], sm["n_deceptive"], sm["n_ambiguous"]) == (2, 3, 2, 1)
    assert sm["n_unrated"] == 5 and sm["n_human_raters"] == 3 and sm["n_machine_raters"] == 1
    assert sm["robust_acc"] == pytest.approx(2 / 12)
    assert sm["robust_acc_valid"] == pytest.approx(2 / 9)
    assert sm["invalid_frac"] == pytest.approx(3 / 10)
    assert sm["invalid_frac_rated"] == pytest.approx(3 / 5)  # mid-study: over the rated ones
    assert sm["deceptive_frac_of_invalid"] == pytest.approx(2 / 3)
    r = {x["rater"]: x for x in sm["raters"]}
    # ann correct on rows 0, 2, 3 of 5: adv_acc 0.6; kept rows (not invalid): 0, 3 -> 2/2
    assert r["ann"]["adv_acc"] == pytest.approx(0.6) and r["ann"]["clean_acc"] == 1.0
    assert r["ann"]["adv_acc_high"] == 1.0 and r["ann"]["adv_acc_low"] == pytest.approx(0.5)
    assert r["ann"]["acc_bound"] == pytest.approx((2 + 0.6 * 10) / 12)
    assert r["ann"]["acc_bound_valid"] == pytest.approx((2 + 1.0 * 7) / 9)
    # bob correct on none; cat on rows 3 and 4; gpt (machine) on row 1
    assert r["bob"]["adv_acc"] == 0 and r["cat"]["adv_acc"] == pytest.approx(0.4)
    assert r["gpt"]["kind"] == "machine" and r["gpt"]["n_clean"] == 0
    assert r["gpt"]["adv_acc"] == pytest.approx(0.2)
    assert r["bob"]["adv_model_agree"] == pytest.approx(4 / 5)  # all but row 0
    human = [r[k]["acc_bound"] for k in ("ann", "bob", "cat")]
    assert sm["human_acc_bound"] == pytest.approx(sum(human) / 3)
    assert sm["rater_acc_bound"] == pytest.approx((sum(human) + r["gpt"]["acc_bound"]) / 4)
    im1 = next(im for im in s.images if im["row"] == 1)
    assert im1["votes"] == {"bird": 3, "automobile": 1} and im1["n_pool_agree_model"] == 3
    assert im1["label_name"] == "automobile" and im1["pred_adv_name"] == "bird"
    assert im1["n_clean_correct"] == 3 and im1["index"] == 101 and im1["attack"] == "apgd-ce"


def test_first_answer_counts_and_unfooled_rows_ignored(tmp_path, adv_h5):
    adv = load_adv_set(adv_h5, images=False)
    base = {"adv_fingerprint": adv.fingerprint, "kind": "validity.label", "rater": "ann",
            "rater_kind": "human", "version": "adv"}
    recs = [dict(base, row=1, choice=1, confidence="high"),
            dict(base, row=1, choice=2, confidence="low"),
            dict(base, row=10, choice=0, confidence="high")]  # row 10 did not fool the model
    s = score_labels(recs, adv)
    assert s.images[1]["status"] == "valid" and s.summary["n_labels_ignored"] == 1
    assert s.images[1]["labels"][0]["choice"] == 1


def test_wrong_file_kind_conflict_and_n_eval(tmp_path, adv_h5):
    adv = load_adv_set(adv_h5, images=False)
    base = {"kind": "validity.label", "rater": "ann", "rater_kind": "human", "version": "adv",
            "row": 0, "choice": 0, "confidence": "low"}
    with pytest.raises(AdvscaleError, match="different adversarial-image file"):
        score_labels([dict(base, adv_fingerprint="f" * 64)], adv)
    ok = dict(base, adv_fingerprint=adv.fingerprint)
    with pytest.raises(AdvscaleError, match="both human and machine"):
        score_labels([ok, dict(ok, rater_kind="machine", row=1)], adv)
    with pytest.raises(AdvscaleError, match="out of range"):
        score_labels([dict(ok, choice=10)], adv)
    assert resolve_n_eval(adv, None) == 12
    assert resolve_n_eval(adv, 1000) == 1000
    with pytest.raises(AdvscaleError, match="smaller"):
        resolve_n_eval(adv, 5)
    assert score_labels([ok], adv, n_eval=100).summary["robust_acc"] == pytest.approx(90 / 100)


def test_all_fooled_file_needs_n_eval(tmp_path):
    from conftest import make_adv_h5

    adv = load_adv_set(make_adv_h5(tmp_path / "all.h5", n=5, n_fooled=5), images=False)
    with pytest.raises(AdvscaleError, match="n_eval"):
        resolve_n_eval(adv, None)
    assert resolve_n_eval(adv, 50) == 50


def test_score_cli(tmp_path, adv_h5):
    from advscale.cli.validity import app

    adv = load_adv_set(adv_h5)
    with LabelStore(tmp_path / "labels", adv) as hs:
        hs.add("ann", 0, "adv", 0, "high")
        hs.add("ann", 1, "adv", 2, "low")
    res = CliRunner().invoke(app, ["score", str(tmp_path / "labels"), "--adv", str(adv_h5)])
    assert res.exit_code == 0, res.output
    recs = loads_all(res.stdout)
    assert [r["kind"] for r in recs] == ["validity.image"] * 10 + ["validity.summary"]
    assert recs[0]["status"] == "valid" and recs[1]["status"] == "deceptive"
    assert recs[-1]["n_unrated"] == 8 and recs[-1]["provenance"]["config"]["min_raters"] == 1
    out = tmp_path / "scores.jsonl"
    res = CliRunner().invoke(app, ["score", str(tmp_path / "labels" / "ann.jsonl"), "--adv",
                                   str(adv_h5), "--summary-only", "-o", str(out)])
    assert res.exit_code == 0 and res.stdout == ""
    (summary,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["kind"] == "validity.summary" and summary["n_deceptive"] == 1
    res = CliRunner().invoke(app, ["score", str(tmp_path / "nope"), "--adv", str(adv_h5)])
    assert res.exit_code != 0 and "no such labels file" in res.output


def test_reads_the_attack_writers_file_and_refuses_a_shard(tmp_path):
    """`attack --save-adv` output (advscale.attacks.advfile) loads and scores unchanged."""
    from types import SimpleNamespace

    advfile = pytest.importorskip("advscale.attacks.advfile")
    import numpy as np

    from advscale.data import CIFAR10_CLASSES

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(8) % 10
    data = SimpleNamespace(images=images, labels=labels, class_names=list(CIFAR10_CLASSES))
    pred_adv = np.array([1, 1, 3, 3, 4, 6, 6, 7])  # rows 0, 2, 5 fooled

    def part(start, stop):
        return SimpleNamespace(
            start=start, stop=stop, pred_clean=labels[start:stop], pred_adv=pred_adv[start:stop],
            x_adv=images[start:stop].astype(np.float32) / 255,
            broken_by=["apgd-ce" if pred_adv[i] != labels[i] else "" for i in range(start, stop)])

    settings = SimpleNamespace(attack="aa-standard", eps=8 / 255, steps=100, step_size=None,
                               n=8, batch_size=4, chunk_size=4, seed=0, norm="linf")
    static = {"model": "wrn-10-1", "checkpoint_sha256": "a" * 64}
    full = advfile.write_adv_file(tmp_path / "full.h5", [part(0, 4), part(4, 8)], data, static,
                                  settings)
    adv = load_adv_set(full)
    assert adv.study_rows().tolist() == [0, 2, 5] and adv.attack[0] == "apgd-ce"
    assert adv.attrs["model"] == "wrn-10-1" and resolve_n_eval(adv, None) == 8
    s = score_labels([], adv)
    assert s.summary["robust_acc"] == pytest.approx(5 / 8) and s.summary["n_unrated"] == 3
    shard = advfile.write_adv_file(tmp_path / "shard.h5", [part(4, 8)], data, static, settings)
    with pytest.raises(AdvscaleError, match="one shard"):
        resolve_n_eval(load_adv_set(shard), None)
    assert resolve_n_eval(load_adv_set(shard), 4) == 4
