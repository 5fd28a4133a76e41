"""The field on the law: published training runs, placed on a scaling law (Bartoldson et al.
2024, Figures 6 and 7, Eq. 6).

:data:`PUBLISHED_RUNS` is a cited table of CIFAR-10 ℓ∞ (8/255) adversarial training runs:
``name``, ``paper``, ``model``, ``params`` (N), ``samples_seen`` (D), ``fid`` (the data's
quality; null when unstated), ``aa_acc`` / ``clean_acc`` as reported (fractions), and where each
number comes from (``source``; ``samples_source`` when D is derived, not stated). A value no
paper in ``/work/shared/papers`` states is null, never guessed; such a run is listed but not
placed. :func:`load_runs` reads one's own runs from a JSONL or CSV file with the same fields.

:func:`place` puts a run on a law of N, D and FID: its budget ``F = k·N·D``, the law's
compute-optimal ``N*``, ``D*``, ``L*`` there, its predicted loss (and accuracy), ``ω_N = N/N*``
and Eq. 6's compute overhead (``ω_N·ω_D − 1``: the extra FLOPs a model of its size needs to
reach ``L*``), and the least FLOPs a compute-optimal run needs to reach the run's own predicted
loss (``flops_optimal_for_loss``; ``flops_saving`` = 1 − that / F). :func:`overhead_curve` is
Figure 7's curve: the overhead against model size at one budget.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws.law import Law
from advscale.laws.wrn_sizes import wrn_params

_BARTOLDSON = "Bartoldson et al. 2024 (ICML)"
_WANG = "Wang et al. 2023 (ICML), Better diffusion models further improve adversarial training"
_WANG_D = ("2000 epochs × 50,000 samples (Wang et al. 2023's schedule; Bartoldson et al. "
           "§3.3.1 and Fig. 7 put the prior SOTA at ~1e8 samples); not stated in the papers "
           "shipped with advscale")

PUBLISHED_RUNS: tuple[dict[str, Any], ...] = (
    {"name": "bartoldson2024-wrn-94-16", "paper": _BARTOLDSON, "model": "wrn-94-16",
     "params": wrn_params(94, 16), "samples_seen": 500e6, "fid": 1.65, "aa_acc": 0.7371,
     "clean_acc": 0.9368,
     "source": "§3.3.1 item (1): WRN-94-16 and 500M samples, 73.71% AutoAttack, 93.68% clean; "
               "App. F.4: 366M parameters; data quality FID ≈ 1.65 assumed for the "
               "compute-efficient runs (App. F.4, 'Compute-Efficient Region')"},
    {"name": "bartoldson2024-wrn-82-8", "paper": _BARTOLDSON, "model": "wrn-82-8",
     "params": wrn_params(82, 8), "samples_seen": None, "fid": 1.65, "aa_acc": 0.7159,
     "clean_acc": 0.9311, "samples_at_budget_of": "wang2023-wrn-70-16",
     "source": "§3.3.1 item (2): WRN-82-8 (79M parameters), predicted compute-optimal at the "
               "prior SOTA's training FLOPs, 71.59% AutoAttack, 93.11% clean; FID ≈ 1.65 "
               "(App. F.4)",
     "samples_source": "derived: the prior SOTA's budget k·N·D / (k·N) (the paper trains it "
                       "at that budget and does not state D)"},
    {"name": "wang2023-wrn-70-16", "paper": _WANG, "model": "wrn-70-16",
     "params": wrn_params(70, 16), "samples_seen": 2000 * 50_000, "fid": 1.82,
     "aa_acc": 0.7069, "clean_acc": None,
     "source": "Bartoldson et al. 2024 §2 'Models': the prior SOTA, WRN-70-16 (267M, §3.3.1), "
               "70.69% AutoAttack; EDM-generated data (FID 1.82 for EDM at 20 steps, "
               "Bartoldson et al. Table 1)", "samples_source": _WANG_D},
    {"name": "wang2023-wrn-28-10", "paper": _WANG, "model": "wrn-28-10",
     "params": wrn_params(28, 10), "samples_seen": 2000 * 50_000, "fid": 1.82,
     "aa_acc": None, "clean_acc": None,
     "source": "Wang et al. 2023's WRN-28-10 (N counted); EDM data as for WRN-70-16; its "
               "accuracy is not stated in the papers shipped with advscale",
     "samples_source": _WANG_D},
    {"name": "peng2023-rawrn-70-16", "paper": "Peng et al. 2023, Robust principles", "model":
     "RaWideResNet-70-16", "params": None, "samples_seen": None, "fid": None,
     "aa_acc": 0.7107, "clean_acc": None,
     "source": "Bartoldson et al. 2024 §2 'Models': 71.07% AutoAttack with a modified WRN; N, "
               "D and data quality not stated"},
    {"name": "cui2023", "paper": "Cui et al. 2023", "model": None, "params": None,
     "samples_seen": None, "fid": None, "aa_acc": None, "clean_acc": None,
     "source": "not described in the papers shipped with advscale; add it with a runs file"},
    {"name": "rebuffi2021", "paper": "Rebuffi et al. 2021, Data augmentation can improve "
     "robustness", "model": None, "params": None, "samples_seen": None, "fid": None,
     "aa_acc": None, "clean_acc": None,
     "source": "Bartoldson et al. 2024 §1: synthetic data 'as many as 50M samples' across "
               "Rebuffi, Gowal, Sehwag and Wang; no per-run N or D stated"},
    {"name": "gowal2021", "paper": "Gowal et al. 2021, Improving robustness using generated "
     "data", "model": None, "params": None, "samples_seen": None, "fid": None, "aa_acc": None,
     "clean_acc": None, "source": "as rebuffi2021: no per-run N or D stated"},
)
"""Published runs (module doc); N is counted analytically for the WRNs (:func:`wrn_params`)."""

FIELDS = ("name", "params", "samples_seen", "fid", "aa_acc", "clean_acc", "model", "paper",
          "source")
"""The fields a runs file may give (``name``, ``params``, ``samples_seen`` required)."""


def builtin_runs() -> list[dict[str, Any]]:
    """:data:`PUBLISHED_RUNS` with D filled where it is derived from another run's budget."""
    by_name = {r["name"]: r for r in PUBLISHED_RUNS}
    out = []
    for r in PUBLISHED_RUNS:
        r = dict(r)
        ref = by_name.get(r.pop("samples_at_budget_of", None) or "")
        if r["samples_seen"] is None and ref and ref["params"] and ref["samples_seen"]:
            r["samples_seen"] = ref["params"] * ref["samples_seen"] / r["params"]
        out.append(r)
    return out


def load_runs(path: str) -> list[dict[str, Any]]:
    """One's own runs from a JSONL (``.jsonl``/``.json``) or CSV file with :data:`FIELDS`."""
    import json

    p = Path(path)
    if not p.is_file():
        raise AdvscaleError(f"runs file {path!r}: no such file", field="runs")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        rows = list(csv.DictReader(text.splitlines()))
    out = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("name"):
            raise AdvscaleError(f"{path}:{i}: a run needs a name", field="runs")
        run = {k: row.get(k) for k in FIELDS}
        for k in ("params", "samples_seen", "fid", "aa_acc", "clean_acc"):
            run[k] = _number(run[k], f"{path}:{i}: {k}")
        run["source"] = run["source"] or f"{path}:{i}"
        out.append(run)
    return out


def _number(v: Any, where: str) -> float | None:
    if v in (None, ""):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise AdvscaleError(f"{where}: {v!r} is not a number", field="runs") from None
    if not math.isfinite(x) or x < 0:
        raise AdvscaleError(f"{where}: {v!r} must be a finite number >= 0", field="runs")
    return x


def place(law: Law, run: dict[str, Any], fid: float | None = None,
          acc_map: str = "auto") -> dict[str, Any]:
    """A run's position on ``law`` (module doc); ``placed: false`` with ``why`` when it lacks
    N or D. ``fid`` overrides the run's own (null → 0)."""
    out: dict[str, Any] = {"run": run["name"], "model": run.get("model"),
                           "params": run.get("params"), "samples_seen": run.get("samples_seen")}
    n, d = run.get("params"), run.get("samples_seen")
    if not (n and d):
        return {**out, "placed": False, "why": "N or D not stated: " + str(run.get("source"))}
    if not (law.supports("optimal") and law.supports("predict")):
        raise AdvscaleError(f"law {law.name!r} ({law.form}) has no compute-optimal N*, D*: "
                            "place runs on an Approach 2 or 3 law")
    q_fid = float(fid if fid is not None else (run.get("fid") or 0.0))
    flops = law.k * n * d
    n_opt, d_opt, v_opt = law.optimal(flops, q_fid)
    value = float(law.value(n, d, q_fid))
    wn = n / n_opt
    wd, overhead = law.tradeoff(flops, wn, q_fid)
    need = law.inverse(value, q_fid)
    out.update(placed=True, fid=q_fid, train_flops=flops, n_opt=n_opt, d_opt=d_opt,
               q_opt=v_opt, q=value, omega_n=wn, omega_d=_finite(wd),
               compute_overhead=_finite(overhead), flops_optimal_for_loss=need,
               flops_saving=(1 - need / flops) if need and math.isfinite(need) else None,
               quantity=law.quantity)
    if law.quantity != "accuracy":
        out["accuracy"] = float(law.to_accuracy(value, acc_map))
        out["accuracy_opt"] = float(law.to_accuracy(v_opt, acc_map))
    out["reported_aa_acc"] = run.get("aa_acc")
    return out


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def placement_record(law: Law, run: dict[str, Any], fid: float | None = None,
                     acc_map: str = "auto", command: str | None = None) -> dict[str, Any]:
    """:func:`place` as a ``prediction`` record (``query`` = ``{run, fid}``)."""
    from advscale.records import make_record

    placed = place(law, run, fid, acc_map)
    payload = {"law": law.name, "form": law.form, "target": law.target,
               "quantity": law.quantity, "query": {"run": run["name"], "fid": fid},
               "flops_per_param_sample": law.k, "published_run": run, **placed}
    return make_record("prediction", payload, command=command,
                       config={"law": law.spec, "fid": fid, "acc_map": acc_map})


def overhead_curve(law: Law, flops: float, fid: float = 0.0, lo: float = 0.2, hi: float = 5.0,
                   num: int = 80) -> tuple[np.ndarray, np.ndarray, float]:
    """Figure 7: model sizes N (``ω_N`` from ``lo`` to ``hi`` times N*) and Eq. 6's compute
    overhead (a fraction; nan where no data size reaches L*) at ``flops``; and N*."""
    n_opt = law.optimal(flops, fid)[0]
    omegas = np.geomspace(lo, hi, num)
    over = np.array([law.tradeoff(flops, float(w), fid)[1] for w in omegas], dtype=float)
    return omegas * n_opt, np.where(np.isfinite(over), over, np.nan), float(n_opt)
