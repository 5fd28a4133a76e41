"""The validity rule of Bartoldson et al. (ICML 2024), appendix G.2, and their Table 4.

Each adversarial image that fooled the model is judged from the raters' labels of that
*adversarial* image (labels of the clean image only feed the per-rater accuracies):

* **valid** — at least ``min_correct`` (the paper: 2, of its 4 raters) raters chose the true
  class, whatever their confidence, *or* at least one **human** rater chose it with high
  confidence. A machine rater (GPT-4 in the paper) counts as one rater towards the 2 but its high
  confidence alone does not make an image valid ("correctly labeled by 2/4 users or 1 *human*
  user with high confidence").
* otherwise **invalid**, and then
  * **deceptive** when the model's adversarial prediction is also the choice of a strict
    majority (more than half) of the human raters who labelled the image ("causing our SOTA NN
    and a majority of humans to make the same incorrect prediction"); ties are not a majority;
  * **ambiguous** otherwise.
* **unrated** — not valid yet and labelled by fewer than ``min_raters`` raters: more labels could
  still make it valid, so it is neither counted valid nor removed.

Table 4: with ``N`` attacked test images of which ``F`` fooled the model (``M = N - F`` robustly
correct) and ``I`` invalid images, the revised robust accuracy is ``M / (N - I)`` and a rater's
estimated accuracy bound is ``(M + a * F) / N`` (``a`` = the rater's accuracy on the fooled
adversarial images) on the original benchmark and ``(M + a' * (F - I)) / (N - I)`` without the
invalid images (``a'`` = accuracy on the images kept). It assumes raters would classify the ``M``
images the model got right correctly too. The human bound averages the human raters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advscale.errors import AdvscaleError
from advscale.validity import RATER_KINDS
from advscale.validity.advset import AdvSet
from advscale.validity.store import read_label_file

RULE = (
    "valid: >= {min_correct} raters chose the true class or >= 1 human rater chose it with high "
    "confidence; invalid otherwise: deceptive if a strict majority of {pool} chose the model's "
    "adversarial prediction, else ambiguous (Bartoldson et al. 2024, appendix G.2)"
)
MAJORITY_POOLS = ("humans", "raters")


@dataclass(frozen=True)
class Vote:
    """One rater's label of one image."""

    rater: str
    kind: str
    """``human`` or ``machine``."""
    choice: int | None
    """Chosen class id; None for a machine rater's unparsable reply (counts as wrong)."""
    confidence: str | None
    """``low`` or ``high`` (None with an abstention)."""


@dataclass(frozen=True)
class Verdict:
    """The validity of one adversarial image under the paper's rule."""

    status: str
    """``valid``, ``deceptive``, ``ambiguous`` or ``unrated``."""
    n_raters: int
    n_correct: int
    n_correct_human_high: int
    n_pool: int
    """Raters in the majority pool for *deceptive* (the humans, by default)."""
    n_pool_agree_model: int
    """Of those, how many chose the model's adversarial prediction."""

    @property
    def valid(self) -> bool | None:
        """True valid, False invalid (deceptive or ambiguous), None unrated."""
        return None if self.status == "unrated" else self.status == "valid"


def judge(
    votes: Iterable[Vote],
    label: int,
    model_pred: int,
    *,
    min_correct: int = 2,
    min_raters: int = 1,
    majority_of: str = "humans",
) -> Verdict:
    """Apply the validity rule to the labels of one adversarial image.

    ``label`` is the true class and ``model_pred`` the model's prediction on the adversarial
    image. ``majority_of`` = ``humans`` (the paper) or ``raters`` (every rater, machines too) is
    the pool whose strict majority must share the model's wrong class for *deceptive*.
    """
    if majority_of not in MAJORITY_POOLS:
        raise AdvscaleError(f"majority_of must be one of {', '.join(MAJORITY_POOLS)}")
    if min_correct < 1 or min_raters < 0:
        raise AdvscaleError("min_correct must be >= 1 and min_raters >= 0")
    votes = list(votes)
    n_correct = sum(v.choice == label for v in votes)
    n_hh = sum(v.choice == label and v.kind == "human" and v.confidence == "high" for v in votes)
    pool = [v for v in votes if majority_of == "raters" or v.kind == "human"]
    agree = sum(v.choice == model_pred for v in pool)
    if n_correct >= min_correct or n_hh >= 1:
        status = "valid"
    elif not votes or len(votes) < min_raters:
        status = "unrated"
    elif model_pred != label and pool and 2 * agree > len(pool):
        status = "deceptive"
    else:
        status = "ambiguous"
    return Verdict(status, len(votes), n_correct, n_hh, len(pool), agree)


# -- reading labels ----------------------------------------------------------------------------


def label_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand labels arguments: files as given, directories to their ``*.jsonl`` (sorted)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.glob("*.jsonl") if q.is_file())
            if not found:
                raise AdvscaleError(f"{p}: no *.jsonl labels files in this directory")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise AdvscaleError(f"{p}: no such labels file or directory")
    return out


def load_labels(
    paths: Iterable[str | os.PathLike[str]], log: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Every ``validity.label`` record in the given files/directories, in file order."""

    records: list[dict[str, Any]] = []
    for path in label_files(paths):
        lines = read_label_file(path)
        if lines.torn_bytes and log is not None:
            log(f"{path}: skipped an unfinished last line ({lines.torn_bytes} bytes)")
        records.extend(lines.records)
    return records


# -- scoring -----------------------------------------------------------------------------------


@dataclass
class Scores:
    """Per-image verdicts (payloads of ``validity.image`` records) and the summary payload."""

    images: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _frac(num: float, den: float) -> float | None:
    return num / den if den else None


def score_labels(
    records: Iterable[Mapping[str, Any]],
    adv: AdvSet,
    *,
    n_eval: int | None = None,
    min_correct: int = 2,
    min_raters: int = 1,
    majority_of: str = "humans",
) -> Scores:
    """Judge every image that fooled the model and compute the Table 4 accuracies.

    ``records`` are ``validity.label`` records made for ``adv`` (checked by fingerprint). The
    first answer of a rater to an image counts. ``n_eval`` is the number of attacked test images;
    by default it comes from the file's attributes, else the file is taken to hold every attacked
    image (it must then contain at least one image that did not fool the model).
    """
    n_eval = resolve_n_eval(adv, n_eval)
    study = [int(r) for r in adv.study_rows()]
    kinds, first, ignored = _first_votes(records, adv, set(study))
    raters = sorted(kinds)
    scores = Scores()
    status_of: dict[int, str] = {}
    for row in study:
        votes = [first[(r, row, "adv")] for r in raters if (r, row, "adv") in first]
        clean = [first[(r, row, "clean")] for r in raters if (r, row, "clean") in first]
        v = judge(votes, int(adv.label[row]), int(adv.pred_adv[row]), min_correct=min_correct,
                  min_raters=min_raters, majority_of=majority_of)
        status_of[row] = v.status
        scores.images.append(_image_row(adv, row, v, votes, clean))
    n_fooled = len(study)
    n_model_correct = n_eval - n_fooled
    count = {s: sum(st == s for st in status_of.values())
             for s in ("valid", "deceptive", "ambiguous", "unrated")}
    n_invalid = count["deceptive"] + count["ambiguous"]
    per_rater = [_rater_stats(r, kinds[r], study, first, adv, status_of, n_eval,
                              n_model_correct, n_invalid, n_fooled - n_invalid) for r in raters]

    def mean_bound(key: str, kind: str | None) -> float | None:
        vals = [s[key] for s in per_rater
                if (kind is None or s["kind"] == kind) and s[key] is not None]
        return sum(vals) / len(vals) if vals else None

    scores.summary = {
        "adv_path": str(adv.path),
        "adv_fingerprint": adv.fingerprint,
        "model": adv.attrs.get("model"),
        "checkpoint_sha256": adv.attrs.get("checkpoint_sha256"),
        "eps": adv.attrs.get("eps"),
        "rule": RULE.format(min_correct=min_correct,
                            pool="human raters" if majority_of == "humans" else "raters"),
        "min_correct": min_correct,
        "min_raters": min_raters,
        "majority_of": majority_of,
        "n_eval": n_eval,
        "n_model_correct": n_model_correct,
        "n_fooled": n_fooled,
        "n_valid": count["valid"],
        "n_invalid": n_invalid,
        "n_deceptive": count["deceptive"],
        "n_ambiguous": count["ambiguous"],
        "n_unrated": count["unrated"],
        "invalid_frac": _frac(n_invalid, n_fooled),
        "invalid_frac_rated": _frac(n_invalid, n_fooled - count["unrated"]),
        "deceptive_frac_of_invalid": _frac(count["deceptive"], n_invalid),
        "robust_acc": _frac(n_model_correct, n_eval),
        "robust_acc_valid": _frac(n_model_correct, n_eval - n_invalid),
        "n_eval_valid": n_eval - n_invalid,
        "n_raters": len(raters),
        "n_human_raters": sum(k == "human" for k in kinds.values()),
        "n_machine_raters": sum(k == "machine" for k in kinds.values()),
        "human_acc_bound": mean_bound("acc_bound", "human"),
        "human_acc_bound_valid": mean_bound("acc_bound_valid", "human"),
        "rater_acc_bound": mean_bound("acc_bound", None),
        "rater_acc_bound_valid": mean_bound("acc_bound_valid", None),
        "n_labels_ignored": ignored,
        "raters": per_rater,
    }
    return scores


def _first_votes(records: Iterable[Mapping[str, Any]], adv: AdvSet, study_set: set[int]
                 ) -> tuple[dict[str, str], dict[tuple[str, int, str], Vote], int]:
    """Rater kinds, each rater's first vote per (row, version), and the labels ignored."""
    kinds: dict[str, str] = {}
    first: dict[tuple[str, int, str], Vote] = {}
    ignored = 0
    for rec in records:
        if rec.get("adv_fingerprint") != adv.fingerprint:
            raise AdvscaleError(
                f"labels of rater {rec.get('rater')!r} were made for a different adversarial-image "
                f"file than {adv.path}"
            )
        rater, kind = rec.get("rater"), rec.get("rater_kind")
        if not isinstance(rater, str) or kind not in RATER_KINDS:
            raise AdvscaleError(f"a label record has a bad rater {rater!r} or kind {kind!r}")
        if kinds.setdefault(rater, kind) != kind:
            raise AdvscaleError(f"rater {rater!r} appears as both {kinds[rater]} and {kind}")
        row, version = rec.get("row"), rec.get("version")
        if not isinstance(row, int) or row not in study_set or version not in ("adv", "clean"):
            ignored += 1
            continue
        choice = rec.get("choice")
        bad = not isinstance(choice, int) or not 0 <= choice < adv.num_classes
        if choice is not None and bad:
            raise AdvscaleError(f"rater {rater!r}, row {row}: class {choice!r} out of range")
        first.setdefault((rater, row, version), Vote(rater, kind, choice, rec.get("confidence")))
    return kinds, first, ignored


def _image_row(adv: AdvSet, row: int, v: Any, votes: list[Vote], clean: list[Vote]
               ) -> dict[str, Any]:
    """One study image's verdict, tally and labels (an entry of ``Scores.images``)."""
    names = adv.class_names
    label, pred = int(adv.label[row]), int(adv.pred_adv[row])
    tally: dict[str, int] = {}
    for vote in votes:
        key = names[vote.choice] if vote.choice is not None else "none"
        tally[key] = tally.get(key, 0) + 1
    return {
        "row": row,
        "index": int(adv.index[row]),
        "label": label,
        "label_name": names[label],
        "pred_adv": pred,
        "pred_adv_name": names[pred],
        "attack": adv.attack[row],
        "status": v.status,
        "valid": v.valid,
        "n_raters": v.n_raters,
        "n_human_raters": sum(x.kind == "human" for x in votes),
        "n_correct": v.n_correct,
        "n_correct_human_high": v.n_correct_human_high,
        "n_majority_pool": v.n_pool,
        "n_pool_agree_model": v.n_pool_agree_model,
        "votes": tally,
        "n_clean_raters": len(clean),
        "n_clean_correct": sum(x.choice == label for x in clean),
        "labels": [
            {"rater": x.rater, "kind": x.kind, "choice": x.choice,
             "confidence": x.confidence, "correct": x.choice == label}
            for x in votes
        ],
    }


def _rater_stats(
    rater: str,
    kind: str,
    study: list[int],
    first: Mapping[tuple[str, int, str], Vote],
    adv: AdvSet,
    status_of: Mapping[int, str],
    n_eval: int,
    n_model_correct: int,
    n_invalid: int,
    kept_fooled: int,
) -> dict[str, Any]:
    """One rater's accuracies (Figure 14) and accuracy bounds (Table 4)."""
    c: dict[str, int] = {}

    def add(key: str, hit: bool) -> None:
        c[key + "_n"] = c.get(key + "_n", 0) + 1
        c[key + "_k"] = c.get(key + "_k", 0) + int(hit)

    for row in study:
        label = int(adv.label[row])
        a = first.get((rater, row, "adv"))
        if a is not None:
            ok = a.choice == label
            add("adv", ok)
            add("adv_" + (a.confidence or "none"), ok)
            add("adv_model", a.choice == int(adv.pred_adv[row]))
            if status_of[row] not in ("deceptive", "ambiguous"):
                add("adv_kept", ok)
        b = first.get((rater, row, "clean"))
        if b is not None:
            add("clean", b.choice == label)
            add("clean_model", b.choice == int(adv.pred_clean[row]))

    def acc(key: str) -> float | None:
        return _frac(c.get(key + "_k", 0), c.get(key + "_n", 0))

    adv_acc, kept_acc = acc("adv"), acc("adv_kept")
    n_kept_eval = n_eval - n_invalid
    return {
        "rater": rater,
        "kind": kind,
        "n_adv": c.get("adv_n", 0),
        "n_clean": c.get("clean_n", 0),
        "adv_acc": adv_acc,
        "adv_acc_low": acc("adv_low"),
        "adv_acc_high": acc("adv_high"),
        "n_adv_low": c.get("adv_low_n", 0),
        "n_adv_high": c.get("adv_high_n", 0),
        "adv_model_agree": acc("adv_model"),
        "clean_acc": acc("clean"),
        "clean_model_agree": acc("clean_model"),
        "adv_acc_kept": kept_acc,
        "acc_bound": None if adv_acc is None
        else (n_model_correct + adv_acc * len(study)) / n_eval,
        "acc_bound_valid": None if kept_acc is None or not n_kept_eval
        else (n_model_correct + kept_acc * kept_fooled) / n_kept_eval,
    }


def resolve_n_eval(adv: AdvSet, n_eval: int | None) -> int:
    """The number of attacked test images: given, from the file's attributes, or its rows."""
    if n_eval is None:
        n_eval = adv.n_eval_hint()
        if n_eval is not None and n_eval != len(adv) and not bool(adv.success.all()):
            raise AdvscaleError(
                f"{adv.path} holds {len(adv)} of the {n_eval} attacked images (one shard?); "
                f"pass n_eval {len(adv)} to score these images alone", field="n_eval")
    if n_eval is None:
        if len(adv) and bool(adv.success.all()):
            raise AdvscaleError(
                f"{adv.path}: every image in it fooled the model, so it does not tell how many "
                "test images were attacked; pass n_eval N (the attack's n)", field="n_eval")
        n_eval = len(adv)
    if n_eval < len(adv) or n_eval <= 0:
        raise AdvscaleError(f"n_eval {n_eval} is smaller than the {len(adv)} rows of {adv.path}")
    return int(n_eval)
