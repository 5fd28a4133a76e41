"""One prediction from a law for one query (what ``advscale predict`` prints per query).

A query is a mapping with any of: ``n`` (parameters N), ``d`` (training samples D), ``fid``
(synthetic-data FID, default 0 = ideal data), ``flops`` (training budget, plain FLOPs) and
``omega_n`` (model size as a multiple of the compute-optimal N*, for Eq. 6). Aliases accepted:
``N``/``params``, ``D``/``samples_seen``, ``FID``, ``FLOPs`` — so ``train.eval`` records can be
queries too.

The result names values after the law's fitted quantity ``q`` (``loss``; ``error`` when an
accuracy was fitted with Approach 2/3; ``accuracy`` for power laws):

* ``q`` at (N, D, FID); ``q_opt``, ``n_opt``, ``d_opt`` at the budget's optimum;
  ``q_inf`` as N, D → ∞ at the FID; ``omega_d`` and ``compute_overhead`` (a fraction) for
  ``omega_n``;
* ``accuracy``, ``accuracy_opt``, ``accuracy_inf`` when asked (``accuracy=True``) or implied;
* ``bands``: ``{field: [lo, hi]}`` 95% percentile bands over the law's bootstrap samples.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from advscale.errors import AdvscaleError
from advscale.laws.data import PUBLISHED_FID, fid_warning, record_fid_metrics
from advscale.laws.law import Law, band

_ALIASES = {
    "n": ("n", "N", "params"),
    "d": ("d", "D", "samples_seen"),
    "fid": ("fid", "FID"),
    "flops": ("flops", "FLOPs", "FLOPS"),
    "omega_n": ("omega_n", "omega_N"),
}


def iter_queries(source: str = "-", stdin: IO[str] | None = None
                 ) -> Iterator[tuple[str, dict[str, Any]]]:
    """JSON objects, one a line, from a file or ``-`` (stdin), with ``file:line``."""
    if source == "-":
        stream, name, close = (stdin if stdin is not None else sys.stdin), "<stdin>", False
    else:
        if not Path(source).is_file():
            raise AdvscaleError(f"--queries {source!r}: no such file")
        stream, name, close = open(source, encoding="utf-8"), source, True
    try:
        for i, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            where = f"{name}:{i}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise AdvscaleError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise AdvscaleError(f"{where}: a query must be a JSON object")
            yield where, obj
    finally:
        if close:
            stream.close()


def normalize_query(q: Mapping[str, Any], where: str = "query") -> dict[str, float | None]:
    """Map aliases to ``n, d, fid, flops, omega_n`` and check each is a sane number."""
    out: dict[str, float | None] = {}
    for key, names in _ALIASES.items():
        val = next((q[k] for k in names if k in q and q[k] is not None), None)
        if val is None:
            out[key] = None
            continue
        if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val):
            raise AdvscaleError(f"{where}: {key} must be a number, got {val!r}")
        if key == "fid" and val < 0:
            raise AdvscaleError(f"{where}: fid must be >= 0, got {val!r}")
        if key != "fid" and val <= 0:
            raise AdvscaleError(f"{where}: {key} must be > 0, got {val!r}")
        out[key] = float(val)
    if out["fid"] is None:
        out["fid"] = 0.0
    return out


def query_fid_warning(law: Law, query: Mapping[str, Any]) -> str | None:
    """A sentence when a query's FID and the law's FIDs are not both the published protocol."""
    info = law.doc.get("fid_inputs") or {}
    if info.get("comparable_to_published") is False:
        return fid_warning(info)
    q_metrics = record_fid_metrics(dict(query))
    if q_metrics - {PUBLISHED_FID}:
        fitted = ", ".join(sorted(info.get("metrics") or [])) or "unlabelled FIDs"
        return (f"warning: the query's FID is {', '.join(sorted(q_metrics))}, but the law "
                f"{law.name!r} was fitted to {fitted}; the metrics differ (biased, not "
                f"comparable), so the prediction is not for this data's quality")
    return None


def predict_one(law: Law, query: Mapping[str, Any], accuracy: bool = False,
                acc_map: str = "auto", where: str = "query") -> dict[str, Any]:
    """The payload of one ``prediction`` record (see the module docstring)."""
    q = normalize_query(query, where)
    n, d, fid, flops, wn = q["n"], q["d"], q["fid"], q["flops"], q["omega_n"]
    has_nd = n is not None or d is not None
    if has_nd and (n is None or d is None):
        raise AdvscaleError(f"{where}: give both n and d (or neither)")
    if not has_nd and flops is None:
        raise AdvscaleError(f"{where}: give n and d (with fid), or flops")
    if wn is not None and flops is None:
        raise AdvscaleError(f"{where}: omega_n needs flops (the budget whose optimum it scales)")
    if has_nd and law.needs() == "flops":
        raise AdvscaleError(f"{where}: a {law.form} law predicts from flops, not n and d")
    qn = law.quantity
    want_acc = accuracy or qn == "error"
    samples = law.samples()
    out: dict[str, Any] = {
        "law": law.name, "form": law.form, "target": law.target, "quantity": qn,
        "query": {k: v for k, v in q.items() if v is not None},
        "flops_per_param_sample": law.k,
    }
    bands: dict[str, list[float] | None] = {}
    if fid > 0 and (warning := query_fid_warning(law, query)):
        out["fid_warning"] = warning
    fids = (law.doc.get("data") or {}).get("fids") or []
    if "epsilon" in (law.doc.get("fixed") or []) and len(fids) == 1 and fid != fids[0]:
        out["note"] = (f"this law was fitted to data of one FID ({fids[0]:g}); its predictions "
                       f"do not depend on FID")

    def acc(v: float) -> float:
        return float(law.to_accuracy(v, acc_map))

    def add(name: str, value: float, fn) -> None:
        out[name] = value
        if samples:
            bands[name] = band(fn, samples)
        if want_acc and qn != "accuracy":
            aname = name.replace(qn, "accuracy", 1)
            out[aname] = acc(value)
            if samples:
                bands[aname] = band(lambda s, fn=fn: acc(fn(s)), samples)

    if has_nd:
        add(qn, float(law.value(n, d, fid)), lambda s: law.value(n, d, fid, s))
        if flops is None:
            out["train_flops"] = law.k * n * d
    if law.form in ("approach2", "approach3"):
        add(f"{qn}_inf", float(law.asymptote(fid)), lambda s: law.asymptote(fid, s))
    if flops is not None:
        n_opt, d_opt, v_opt = law.optimal(flops, fid)
        if law.form == "power-law":
            add(qn, v_opt, lambda s: law.optimal(flops, fid, s)[2])
            for name, p in law.also().items():
                out[name] = float(p["C"] * flops ** p["alpha"])
        else:
            out["n_opt"], out["d_opt"] = n_opt, d_opt
            if samples:
                bands["n_opt"] = band(lambda s: law.optimal(flops, fid, s)[0], samples)
                bands["d_opt"] = band(lambda s: law.optimal(flops, fid, s)[1], samples)
            add(f"{qn}_opt", v_opt, lambda s: law.optimal(flops, fid, s)[2])
        if wn is not None:
            wd, overhead = law.tradeoff(flops, wn, fid)
            out["omega_n"] = wn
            out["omega_d"] = wd if math.isfinite(wd) else None
            out["compute_overhead"] = overhead if math.isfinite(overhead) else None
            out["n_tradeoff"] = wn * n_opt
            out["d_tradeoff"] = wd * d_opt if math.isfinite(wd) else None
            if not math.isfinite(wd):
                out["note"] = (f"no data size reaches the optimal {qn} with a model "
                               f"{wn:g}× the optimal size")
            if samples:
                bands["compute_overhead"] = band(lambda s: law.tradeoff(flops, wn, fid, s)[1],
                                                 samples)
    if samples:
        out["bands"] = bands
        out["band_level"] = 0.95
        out["bootstrap_samples"] = len(samples)
    return out
