"""From JSONL records to the points a law is fitted to.

``advscale fit`` reads ``train.eval`` records (``advscale train``) and ``attack`` records
(``advscale attack``), joins them into runs (:mod:`advscale.records.runs`, the same table
``advscale report`` reads), and turns them into
:class:`Point` s: N (``params``), D (``samples_seen``), FID (``fid``; ``null`` — real data
only — counts as 0), training FLOPs (``train_flops``, or ``samples_seen ×
train_flops_per_sample``) and the target value:

* ``adv_loss`` — the TRADES β=5 loss under PGD-40-CW (the paper's target), lower is better;
* ``robust_acc`` / ``clean_acc`` — accuracies (fractions) from ``train.eval``;
* ``aa_acc`` — AutoAttack accuracy: ``robust_acc`` of ``attack`` records whose ``attack`` is
  ``aa-standard`` (by default), joined to their run's ``train.eval`` records for FID, FLOPs
  and the training recipe.

Which evaluation points of a run are used (``points``): ``final`` (default: the record marked
``final``, else the one with the most samples), ``best`` (lowest loss / highest accuracy: early
stopping) or ``all`` (the whole training curve; Approach 1 always uses ``all``).

Every malformed or missing field is an :class:`AdvscaleError` naming ``file:line``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from advscale.errors import AdvscaleError
from advscale.laws.filters import RecordFilter
from advscale.records.runs import Run, RunTable, Tagged, iter_tagged, read_runs

RecordSet = RunTable
"""The records → runs table (:class:`advscale.records.runs.RunTable`), by its old name."""

__all__ = [
    "POINT_MODES", "PUBLISHED_FID", "TARGETS", "Point", "RecordSet", "Run", "RunTable", "Tagged",
    "apply_filters", "check_target_values", "collect_points", "dataset_name", "fid_inputs",
    "fid_warning", "is_loss", "iter_tagged", "paper_exclusion", "read_runs",
    "record_fid_metrics", "single_fid_metric", "train_fraction",
]

TARGETS = ("adv_loss", "robust_acc", "clean_acc", "aa_acc")
"""Targets ``advscale fit --target`` knows; ``adv_loss`` is a loss, the others accuracies."""

POINT_MODES = ("final", "best", "all")

# Appendix F.2: runs with N < 100M, D > 10M and FID < 10 are dropped.
EXCLUSION_MAX_PARAMS = 100e6
EXCLUSION_MIN_SAMPLES = 10e6
EXCLUSION_MAX_FID = 10.0


def is_loss(target: str) -> bool:
    """True for targets where lower is better (losses); False for accuracies."""
    return target == "adv_loss" or target.endswith("_loss")


@dataclass
class Point:
    """One observation: N parameters, D samples, FID, training FLOPs and the target value."""

    run_id: str
    where: str
    n: float | None
    """Parameters N; None only for laws that do not use it (the power law, GBR)."""
    d: float | None
    """Samples seen D; None only for laws that do not use it."""
    fid: float
    flops: float | None
    value: float
    rec: dict[str, Any]


def collect_points(
    rs: RecordSet,
    target: str = "adv_loss",
    points: str = "final",
    attack: str = "aa-standard",
    needs: Needs | None = None,
    log=None,
    min_train_fraction: float = 0.0,
    pre_filters: Iterable[str] = (),
) -> list[Point]:
    """The fit's observations for ``target``, ``points`` per run (see the module docstring).

    A ``null`` target (the contract's mark of a non-finite value, e.g. a diverged run) is
    skipped, not an error; in ``final`` mode a run whose final evaluation is null is dropped.
    Both are logged. Before each run's point is chosen, evaluations with a train fraction
    below ``min_train_fraction`` are dropped (:func:`train_fraction`; the notebook keeps
    checkpoints past half of training), and so are those a ``pre_filters`` expression rejects
    (``--filter-order before``). ``needs`` names the fields every point must carry (the
    fitted approach's :attr:`~advscale.laws.approach.Approach.needs`; default N and D only);
    with ``nd=False`` (the power law, GBR) ``params`` and ``samples_seen`` may be missing or
    null (the point's N, D are then None).
    """
    if points not in POINT_MODES:
        raise AdvscaleError(f"points {points!r}: choose from {', '.join(POINT_MODES)}",
                            field="points")
    out: list[Point] = []
    nulls, dropped = 0, []
    screen = _Screen(min_train_fraction, pre_filters)
    need = needs or Needs()
    for run in rs.runs.values():
        if target == "aa_acc":
            cands = _attack_points(run, attack, need)
        else:
            cands, n_null, final_is_null = _eval_points(run, target, need)
            nulls += n_null
            if final_is_null and points == "final":
                dropped.append(run.run_id)
                continue
        cands = screen(cands)
        if cands:
            out.extend(_choose(run, cands, target, points))
    screen.check()
    screen.report(log)
    if log and nulls:
        log(f"skipped {nulls} evaluations with {target}: null (non-finite)"
            + (f"; dropped {len(dropped)} runs whose final {target} is null" if dropped else ""))
    if target == "aa_acc":
        _refuse_orphan_attacks(rs, attack)
    if not out:
        raise AdvscaleError(
            f"no usable records for target {target}: need train.eval records"
            + (f" and '{attack}' attack records" if target == "aa_acc" else ""), field="target")
    return out


@dataclass(frozen=True)
class Needs:
    """Which fields every point of a fit must carry: a FID (``fid``), training FLOPs
    (``flops``), and N and D (``nd``; False when the law uses neither)."""

    fid: bool = False
    flops: bool = False
    nd: bool = True


def _nd(t: Tagged, need: Needs) -> tuple[float | None, float | None]:
    """(N, D) of an evaluation: required and checked, or optional when the law uses neither."""
    if need.nd:
        return t.number("params", positive=True), t.number("samples_seen")
    n = t.number("params", required=False)
    d = t.number("samples_seen", required=False)
    return (n if n and n > 0 else None), d


def _flops(t: Tagged, d: float | None, need: Needs) -> float | None:
    """Training FLOPs of an evaluation (``samples_seen`` is needed only to derive them)."""
    if d is not None or t.number("train_flops", required=False) is not None:
        return t.train_flops(d if d is not None else 0.0, need.flops)
    if need.flops:
        raise AdvscaleError(f"{t.where}: {t.kind} record lacks 'train_flops' (and "
                            f"'samples_seen' to derive it from 'train_flops_per_sample')")
    return None


def _eval_points(run: Run, target: str, need: Needs) -> tuple[list[Point], int, bool]:
    """A run's train.eval points for ``target``; the nulls skipped; whether the final is null."""
    cands: list[Point] = []
    nulls, final_is_null = 0, False
    seen = [t.rec.get("samples_seen") for t in run.evals]
    run_max_d = max((float(v) for v in seen if _positive(v)), default=None)
    for t in run.evals:
        n, d = _nd(t, need)
        if (d is None and need.nd) or (d is not None and d <= 0):
            continue  # an evaluation before training: no D to scale with
        v = t.number(target, allow_null=True, why=f" (needed for --target {target})")
        if v is None:
            nulls += 1
            final_is_null = final_is_null or t.rec.get("final") is True
            continue
        cands.append(Point(run.run_id, t.where, n, d, t.fid(need.fid), _flops(t, d, need), v,
                           _features(t.rec, d, run_max_d)))
    return cands, nulls, final_is_null


def _refuse_orphan_attacks(rs: RecordSet, attack: str) -> None:
    """An ``attack`` record of the fitted attack that joins no run is an error."""
    for t in rs.orphans:
        if t.kind != "attack" or t.rec.get("attack") != attack:
            continue
        rid = t.rec.get("run_id")
        if not rid:
            raise AdvscaleError(
                f"{t.where}: attack record has no 'run_id', so it cannot be joined to its "
                f"training run (FID, FLOPs, recipe); attack a run directory or checkpoint "
                f"saved by advscale train"
            )
        raise AdvscaleError(
            f"{t.where}: attack record's run_id {rid!r} has no train.eval records "
            f"to join (FID, FLOPs, recipe); pass the run's records.jsonl too"
        )


def _attack_points(run: Run, attack: str, need: Needs) -> list[Point]:
    pts = []
    for t in run.attacks:
        if t.rec.get("attack") != attack:
            continue
        joined = run.eval_at(t.rec.get("samples_seen"))
        if joined is None:  # not reached: build_runs opens runs only for train.eval records
            raise AdvscaleError(f"{t.where}: run {run.run_id!r} has no train.eval records")
        jn, jd = _nd(joined, need)
        d = t.number("samples_seen", required=False) or jd
        n = t.number("params", required=False) or jn
        v = t.number("robust_acc", why=" (needed for --target aa_acc)")
        rec = _features(joined.rec, d)
        rec.update({k: t.rec.get(k) for k in ("attack", "checkpoint", "eps", "n")})
        rec["aa_acc"] = v
        pts.append(Point(run.run_id, t.where, n, d, joined.fid(need.fid),
                         _flops(joined, d, need), v, rec))
    return pts


def _features(rec: dict[str, Any], d: float | None, run_max_d: float | None = None
              ) -> dict[str, Any]:
    """The record's fields plus aliases N, D, FID, and ``dataset``, ``train_fraction`` and
    ``samples_nominal`` (see :func:`dataset_name`, :func:`train_fraction`)."""
    out = {k: v for k, v in rec.items() if k not in ("provenance",)}
    out["N"] = rec.get("params")
    out["D"] = d
    out["FID"] = rec.get("fid") if rec.get("fid") is not None else 0.0
    out["dataset"] = dataset_name(rec)
    metrics = sorted(record_fid_metrics(rec))
    out["fid_metric"] = "+".join(metrics) if metrics else None
    out["train_fraction"] = train_fraction(rec, d, run_max_d)
    target = rec.get("samples_target")
    out["samples_nominal"] = (float(target) if _positive(target)
                              else (run_max_d if run_max_d else d))
    return out


def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def dataset_name(rec: dict[str, Any]) -> str:
    """The dataset a record was trained on: ``data_source`` (the notebook's column), else
    ``dataset``, else the stems of ``data[].path`` joined by ``+`` (``real`` without any)."""
    for key in ("data_source", "dataset"):
        if isinstance(rec.get(key), str) and rec[key]:
            return rec[key]
    stems = [PurePath(str(s["path"])).stem for s in rec.get("data") or []
             if isinstance(s, dict) and s.get("path")]
    return "+".join(stems) if stems else "real"


def train_fraction(rec: dict[str, Any], d: float | None, run_max_d: float | None = None
                   ) -> float:
    """How far into its training an evaluation is: ``train_fraction`` when the record gives
    it (the notebook's column), else ``samples_seen / samples_target``, else ``samples_seen``
    over the run's largest ``samples_seen``."""
    tf = rec.get("train_fraction")
    if _positive(tf):
        return float(tf)
    if d is None:
        return 1.0
    target = rec.get("samples_target")
    if _positive(target):
        return float(d) / float(target)
    return float(d) / run_max_d if run_max_d else 1.0


class _Screen:
    """Drops evaluations before each run's point is chosen, and counts what each rule kept."""

    def __init__(self, min_train_fraction: float, exprs: Iterable[str]) -> None:
        self.min_tf = min_train_fraction
        self.filters = [RecordFilter(e) for e in exprs]
        self.seen = 0
        self.kept = [0] * (len(self.filters) + 1)
        self.known: set[str] = set()

    def __call__(self, cands: list[Point]) -> list[Point]:
        self.seen += len(cands)
        if self.filters:
            for p in cands:
                self.known.update(p.rec)
        if self.min_tf > 0:
            cands = [p for p in cands if p.rec["train_fraction"] >= self.min_tf]
        self.kept[0] += len(cands)
        for i, f in enumerate(self.filters, start=1):
            cands = [p for p in cands if f(p.rec)]
            self.kept[i] += len(cands)
        return cands

    def check(self) -> None:
        """Refuse a filter naming a field that no evaluation has."""
        for f in self.filters:
            f.check_fields(self.known)

    def report(self, log) -> None:
        if not log:
            return
        if self.min_tf > 0:
            log(f"train fraction >= {self.min_tf:g}: kept {self.kept[0]} of {self.seen} "
                f"evaluations")
        before = self.kept[0]
        for f, kept in zip(self.filters, self.kept[1:], strict=True):
            log(f"filter {f.expr!r} (before choosing each run's point): kept {kept} of "
                f"{before} evaluations")
            before = kept


def _choose(run: Run, cands: list[Point], target: str, points: str) -> list[Point]:
    if points == "all":
        return sorted(cands, key=lambda p: p.d or 0.0)
    if points == "best":
        pick = min if is_loss(target) else max
        return [pick(cands, key=lambda p: p.value)]
    finals = [p for p in cands if p.rec.get("final") is True]
    return [max(finals or cands, key=lambda p: p.d or 0.0)]


def check_target_values(pts: list[Point], target: str, log_space: bool = True,
                        as_error: bool = False) -> None:
    """Refuse, in one line with a count and a fix, accuracies in percent and values a fit in
    log space cannot take (≤ 0; for a law of the error rate, accuracies ≥ 1)."""
    values = [p.value for p in pts]
    if not is_loss(target):
        over = [v for v in values if v > 1]
        if over:
            raise AdvscaleError(
                f"target {target}: {len(over)} of {len(values)} values exceed 1 (largest "
                f"{max(over):g}): accuracies look like percents, and advscale takes fractions in "
                f"[0, 1]; divide them by 100 (`advscale records import` converts a column whose "
                f"map says unit = \"percent\")", field="target")
    if not log_space:
        return
    error = as_error and not is_loss(target)
    bad = [p for p in pts if not ((1.0 - p.value) if error else p.value) > 0]
    if bad:
        what, keep = (f"1 - {target}", f"{target} < 1") if error else (target, f"{target} > 0")
        raise AdvscaleError(
            f"target {target}: {len(bad)} of {len(pts)} points have {what} <= 0 (e.g. "
            f"{bad[0].where}), which a fit in log space cannot use; drop them with the filters "
            f"'{keep}'", field="target,filters")


def single_fid_metric(info: dict[str, Any], option: str) -> str | None:
    """The one quality metric of a fit's synthetic points (None when none is named); a mix
    of metrics is refused: their values are on different scales."""
    metrics = info.get("metrics") or []
    if len(metrics) > 1:
        raise AdvscaleError(
            f"approach {option} fits one quality metric at a time, and the records' FIDs are "
            f"measured by {len(metrics)}: {', '.join(metrics)}; keep one, e.g. the filters "
            f"\"FID == 0 or fid_metric == '{metrics[0]}'\"", field="filters")
    return metrics[0] if metrics else None


def apply_filters(pts: list[Point], exprs: Iterable[str], log=None) -> list[Point]:
    """Keep the points every ``--filter`` expression accepts (logged)."""
    out = pts
    known = {k for p in pts for k in p.rec}
    for expr in exprs:
        f = RecordFilter(expr)
        f.check_fields(known)
        before = len(out)
        out = [p for p in out if f(p.rec)]
        if log:
            log(f"filter {expr!r}: kept {len(out)} of {before} points")
    return out


def paper_exclusion(pts: list[Point], log=None, max_params: float = EXCLUSION_MAX_PARAMS,
                    min_samples: float = EXCLUSION_MIN_SAMPLES,
                    max_fid: float = EXCLUSION_MAX_FID, size: str = "samples"
                    ) -> tuple[list[Point], list[str]]:
    """Appendix F.2's rule: drop whole runs with N < 100M, D > 10M and FID < 10.

    A run's D is its largest samples_seen among the points (``size="samples"``), or its
    nominal data size, ``samples_target`` (``size="nominal"``, the notebook's: a 10M run that
    saw 10.24M samples is kept). Returns the kept points and the dropped run ids (logged).
    """
    by_run: dict[str, list[Point]] = {}
    for p in pts:
        by_run.setdefault(p.run_id, []).append(p)
    dropped = []
    for rid, ps in by_run.items():
        n = max(p.n for p in ps)
        d = max(p.rec["samples_nominal"] if size == "nominal" else p.d for p in ps)
        fid = ps[-1].fid
        if n < max_params and d > min_samples and fid < max_fid:
            dropped.append(rid)
    kept = [p for p in pts if p.run_id not in set(dropped)]
    if log:
        log(f"paper exclusion rule (drop runs with N < {max_params:.3g}, D > {min_samples:.3g}"
            f", FID < {max_fid:g}): dropped {len(dropped)} of {len(by_run)} runs"
            + (" (turn off with --no-paper-exclusion)" if dropped else ""))
    return kept, dropped


# -- where the FID values came from --------------------------------------------------------------
PUBLISHED_FID = "fid"
"""The metric name of an FID measured with the published protocol (Inception, 50k vs 50k)."""


def record_fid_metrics(rec: dict[str, Any]) -> set[str]:
    """The FID metric names of a record's synthetic sources (empty when it does not say).

    ``train.eval`` records name them per source in ``data[].fid_metric``; a query may carry a
    top-level ``fid_metric``.
    """
    out: set[str] = set()
    if isinstance(rec.get("fid_metric"), str):
        out.add(rec["fid_metric"])
    for s in rec.get("data") or []:
        if not isinstance(s, dict) or s.get("fid") is None:
            continue
        if isinstance(s.get("fid_metric"), str):
            out.add(s["fid_metric"])
    return out


def fid_inputs(pts: Iterable[Point]) -> dict[str, Any]:
    """Which FID metrics a fit's points used, and whether they compare with the papers' FIDs.

    ``comparable_to_published`` is true when every point with FID > 0 names the published
    protocol (``fid``), false when any names another metric (``fid_inception_n1000``: fewer
    images, biased high), and null when there is no synthetic data or no point says.
    """
    metrics: set[str] = set()
    synthetic = unlabelled = 0
    for p in pts:
        if not p.fid > 0:
            continue
        synthetic += 1
        m = record_fid_metrics(p.rec)
        metrics |= m
        unlabelled += not m
    if metrics - {PUBLISHED_FID}:
        comparable: bool | None = False
    elif metrics and not unlabelled:
        comparable = True
    else:
        comparable = None
    return {"metrics": sorted(metrics), "synthetic_points": synthetic,
            "unlabelled_points": unlabelled, "comparable_to_published": comparable}


def warn_off_protocol(info: dict[str, Any], log) -> None:
    """Log :func:`fid_warning` when the fit's FIDs are off the published protocol."""
    warning = fid_warning(info)
    if warning:
        log(warning)


def fid_warning(info: dict[str, Any]) -> str | None:
    """One line for people when the FIDs are not the published protocol's, else None."""
    if info.get("comparable_to_published") is False:
        other = [m for m in info.get("metrics", []) if m != PUBLISHED_FID]
        return (f"warning: FID inputs are {', '.join(other)}, not the published protocol "
                f"(Inception, 50k generated vs the 50k training images); FID-dependent "
                f"constants and predictions are not comparable to the papers', and --fid "
                f"queries must use the same metric")
    return None
