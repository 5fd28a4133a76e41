"""One prediction from a law for one query (what ``advscale predict`` prints per query).

A query is a mapping with any of: ``n`` (parameters N), ``d`` (training samples D), ``fid``
(synthetic-data FID, default 0 = ideal data), ``flops`` (training budget, plain FLOPs) and
``omega_n`` (model size as a multiple of the compute-optimal N*, for Eq. 6). Aliases accepted:
``N``/``params``, ``D``/``samples_seen``, ``FID``, ``FLOPs`` — so ``train.eval`` records can be
queries too.

The result names values after the law's fitted quantity ``q`` (``loss``; ``error`` when an
accuracy was fitted with Approach 2/3; ``accuracy`` for power laws):

* ``q`` at (N, D, FID); ``q_opt``, ``n_opt``, ``d_opt`` at the budget's optimum (with
  ``models``: the registered WRNs nearest N* and the nearest other WRN-D-W, each with N and
  FLOPs per sample, :func:`advscale.laws.wrn_sizes.nearest_wrns`), with Table 3's
  exponents ``a``, ``b`` (N* ∝ F^a, D* ∝ F^b; Approach 3: its FID-0 values) and, for laws whose
  exponents vary with the budget (Approach 3 at FID > 0), ``a_local``, ``b_local`` =
  d ln N*/d ln F and d ln D*/d ln F at the queried budget;
  ``q_inf`` as N, D → ∞ at the FID; ``omega_d`` and ``compute_overhead`` (a fraction) for
  ``omega_n``;
* ``accuracy``, ``accuracy_opt``, ``accuracy_inf`` when asked (``accuracy=True``) or implied;
* ``bands``: ``{field: [lo, hi]}`` 95% percentile bands over the law's bootstrap samples.

The inverse: a query with ``target_accuracy`` (a fraction) or ``target_loss`` (the law's
fitted loss) instead of a budget gets ``flops_needed``, the least FLOPs that reach it (along
the compute-optimal frontier for Approaches 1–3, in closed form for power laws and Approaches
1, 2), and the forward prediction there (N*, D*, ...), or ``reachable: false`` with the law's
asymptote. Accuracies are clipped to [0, 1] (``accuracy_clipped`` names those that were);
``extrapolation`` gives how many times beyond the fitted N, D and FLOPs ranges the query and
its optimum lie (1 = inside; null for presets), with an ``extrapolation_warning`` past
:data:`EXTRAPOLATION_WARN`; an N* or D* below 1 is reported as ``degenerate``, not a number.
Laws of FID name their quality metric in ``fid_metric``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from advscale.core.jsonl import loads_bounded
from advscale.errors import AdvscaleError
from advscale.laws.data import PUBLISHED_FID, fid_warning, record_fid_metrics
from advscale.laws.law import Law, band
from advscale.laws.wrn_sizes import nearest_wrns
from advscale.records import make_record

_ALIASES = {
    "n": ("n", "N", "params"),
    "d": ("d", "D", "samples_seen"),
    "fid": ("fid", "FID"),
    "flops": ("flops", "FLOPs", "FLOPS"),
    "omega_n": ("omega_n", "omega_N"),
    "x": ("x",),
    "target_accuracy": ("target_accuracy",),
    "target_loss": ("target_loss",),
}

EXTRAPOLATION_WARN = 10.0
"""A prediction this many times beyond a fitted range (N, D or FLOPs) is warned about."""


def iter_queries(source: str = "-", stdin: IO[str] | None = None
                 ) -> Iterator[tuple[str, dict[str, Any]]]:
    """JSON objects, one a line, from a file or ``-`` (stdin), with ``file:line``."""
    if source == "-":
        stream, name, close = (stdin if stdin is not None else sys.stdin), "<stdin>", False
    else:
        if not Path(source).is_file():
            raise AdvscaleError(f"queries {source!r}: no such file", field="queries")
        stream, name, close = open(source, encoding="utf-8"), source, True
    try:
        for i, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            where = f"{name}:{i}"
            obj = loads_bounded(line, where)
            if not isinstance(obj, dict):
                raise AdvscaleError(f"{where}: a query must be a JSON object")
            yield where, obj
    except UnicodeDecodeError as e:
        raise AdvscaleError(f"{name}: not UTF-8 text ({e.reason})") from None
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
        if key == "target_accuracy" and val > 1:
            raise AdvscaleError(f"{where}: target_accuracy {val!r} is not a fraction in (0, 1] "
                                f"(a percent? divide it by 100)")
        out[key] = float(val)
    if out["fid"] is None:
        out["fid"] = 0.0
    return out


def query_fid_warning(law: Law, query: Mapping[str, Any]) -> str | None:
    """A sentence when a query's FID and the law's FIDs are not both the published protocol,
    or name different metrics."""
    info = law.doc.get("fid_inputs") or {}
    q_metrics = record_fid_metrics(dict(query))
    law_metrics = set(info.get("metrics") or [])
    mismatch = bool(q_metrics) and bool(law_metrics) and q_metrics != law_metrics
    if info.get("comparable_to_published") is False and not mismatch:
        return fid_warning(info)
    if mismatch or q_metrics - {PUBLISHED_FID}:
        fitted = ", ".join(sorted(info.get("metrics") or [])) or "unlabelled FIDs"
        return (f"warning: the query's FID is {', '.join(sorted(q_metrics))}, but the law "
                f"{law.name!r} was fitted to {fitted}; the metrics differ (biased, not "
                f"comparable), so the prediction is not for this data's quality")
    return None


def _checked_query(law: Law, query: Mapping[str, Any], where: str) -> dict[str, float | None]:
    """The normalized query, refused in one line when it does not fit the law."""
    q = normalize_query(query, where)
    _law_x(law, q, where)
    has_nd = q["n"] is not None or q["d"] is not None
    goals = [k for k in ("target_accuracy", "target_loss") if q[k] is not None]
    if has_nd and (q["n"] is None or q["d"] is None):
        raise AdvscaleError(f"{where}: give both n and d (or neither)")
    if goals and (has_nd or q["flops"] is not None or len(goals) > 1):
        raise AdvscaleError(f"{where}: give one of target_accuracy, target_loss alone (with "
                            f"fid): the budget is what it answers")
    if not has_nd and q["flops"] is None and not goals:
        raise AdvscaleError(f"{where}: give n and d (with fid), flops, or a target_accuracy or "
                            f"target_loss")
    if q["omega_n"] is not None and q["flops"] is None:
        raise AdvscaleError(f"{where}: omega_n needs flops (the budget whose optimum it scales)")
    if has_nd and law.needs() == "flops":
        raise AdvscaleError(f"{where}: a {law.form} law predicts from flops, not n and d")
    return q


def _law_x(law: Law, q: dict[str, float | None], where: str) -> None:
    """A law of another x than FLOPs (``fit --x cost_usd``) is queried with ``x``."""
    if law.x == "train_flops":
        if q["x"] is not None:
            raise AdvscaleError(f"{where}: the law is of FLOPs: give flops, not x")
        return
    if q["flops"] is not None:
        raise AdvscaleError(f"{where}: the law is of {law.x}, not FLOPs: give x (its "
                            f"{law.x} value) instead of flops")
    q["flops"] = q["x"]  # the power law's budget slot holds its x


class _Prediction:
    """One prediction being assembled: values named after the law's quantity, and bands."""

    def __init__(self, law: Law, q: dict[str, float | None], accuracy: bool, acc_map: str):
        self.law, self.q, self.acc_map = law, q, acc_map
        self.qn = law.quantity
        self.want_acc = (accuracy or self.qn == "error" or q.get("target_accuracy") is not None
                         ) and self.qn != "accuracy"
        self.samples = law.samples()
        self.bands: dict[str, list[float] | None] = {}
        self.out: dict[str, Any] = {
            "law": law.name, "form": law.form, "target": law.target, "quantity": self.qn,
            "query": {k: v for k, v in q.items() if v is not None
                      and not (k == "flops" and law.x != "train_flops")},
            "flops_per_param_sample": law.k,
        }
        if law.x != "train_flops":
            self.out["x"] = law.x
        if law.needs() == "ndf":
            self.out["fid_metric"] = law.fid_metric

    def _acc(self, v: float) -> float:
        return float(self.law.to_accuracy(v, self.acc_map))

    def band(self, name: str, fn: Callable[[dict], float]) -> None:
        """The bootstrap band of ``name`` (when the law carries samples)."""
        if self.samples:
            self.bands[name] = band(fn, self.samples)

    def add(self, name: str, value: float, fn: Callable[[dict], float]) -> None:
        """``name`` = ``value`` (``fn(params)`` for bands), and its accuracy when wanted."""
        self.out[name] = value
        self.band(name, fn)
        if self.want_acc:
            aname = name.replace(self.qn, "accuracy", 1)
            self.out[aname] = self._acc(value)
            self.band(aname, lambda s: self._acc(fn(s)))

    def finish(self) -> dict[str, Any]:
        _clip_accuracies(self)
        _extrapolation(self)
        if self.samples:
            self.out["bands"] = self.bands
            self.out["band_level"] = 0.95
            self.out["bootstrap_samples"] = len(self.samples)
        return self.out


def _notes(p: _Prediction, query: Mapping[str, Any]) -> None:
    """FID warnings, and a note when the law cannot depend on the query's FID."""
    law, fid = p.law, p.q["fid"]
    if fid > 0 and (warning := query_fid_warning(law, query)):
        p.out["fid_warning"] = warning
    fids = (law.doc.get("data") or {}).get("fids") or []
    if "epsilon" in (law.doc.get("fixed") or []) and len(fids) == 1 and fid != fids[0]:
        p.out["note"] = (f"this law was fitted to data of one FID ({fids[0]:g}); its predictions "
                         f"do not depend on FID")


def _at_nd(p: _Prediction) -> None:
    law, n, d, fid = p.law, p.q["n"], p.q["d"], p.q["fid"]
    p.add(p.qn, float(law.value(n, d, fid)), lambda s: law.value(n, d, fid, s))
    if p.q["flops"] is None:
        p.out["train_flops"] = law.k * n * d


def _at_budget(p: _Prediction) -> None:
    """The optimum for the budget (N*, D*, value), or a law of FLOPs' value and ``also``."""
    law, flops, fid = p.law, p.q["flops"], p.q["fid"]
    if not law.supports("optimal"):
        p.add(p.qn, float(law.at_budget(flops)), lambda s: law.at_budget(flops, s))
        for name, c in law.also().items():
            p.out[name] = float(c["C"] * flops ** c["alpha"])
        return
    n_opt, d_opt, v_opt = law.optimal(flops, fid)
    if not (n_opt >= 1 and d_opt >= 1):
        _degenerate(p, n_opt, d_opt)
    else:
        p.out["n_opt"], p.out["d_opt"] = n_opt, d_opt
        p.out["models"] = nearest_wrns(n_opt, law.k)
        p.band("n_opt", lambda s: law.optimal(flops, fid, s)[0])
        p.band("d_opt", lambda s: law.optimal(flops, fid, s)[1])
    p.add(f"{p.qn}_opt", v_opt, lambda s: law.optimal(flops, fid, s)[2])
    _exponents(p)


def _degenerate(p: _Prediction, n_opt: float, d_opt: float) -> None:
    """N* or D* below one: not a model or data size; reported as such, not as numbers."""
    which = [f"{name} = {v:.3g}" for name, v in (("N*", n_opt), ("D*", d_opt))
             if not v >= 1]
    p.out["n_opt"] = p.out["d_opt"] = None
    p.out["degenerate"] = (
        f"warning: degenerate law at {p.q['flops']:.3g} FLOPs: {' and '.join(which)} < 1 (not a "
        f"model or data size); its compute-optimal split means nothing here (check the fit: "
        f"too few sizes, parameters at a bound)")


def _inverse(p: _Prediction, acc_map: str) -> bool:
    """Solve for the least FLOPs reaching the query's target; True when some budget does.

    Sets ``flops_needed`` (and the query's budget, for the forward prediction there), or
    ``reachable: false`` with a note naming the asymptote.
    """
    law, q, qn, fid = p.law, p.q, p.qn, p.q["fid"]
    if q["target_accuracy"] is not None:
        goal, asked = law.from_accuracy(q["target_accuracy"], acc_map), "accuracy"
    else:
        if qn != "loss":
            raise AdvscaleError(f"target_loss: the law {law.name!r} fits {qn}, not a loss; "
                                f"give target_accuracy", field="target_loss,target_accuracy")
        goal, asked = q["target_loss"], "loss"
    p.out["target_value"] = goal
    flops = law.inverse(goal, fid)
    reachable = flops is not None and math.isfinite(flops)
    p.out["reachable"] = reachable
    p.out["flops_needed"] = flops if reachable else None
    if reachable:
        q["flops"] = flops
        if law.approach.constant_exponents:
            p.band("flops_needed", lambda s: _or_nan(law.inverse(goal, fid, s)))
        return True
    target = q["target_accuracy"] if asked == "accuracy" else goal
    if flops is not None:
        why = "no budget below 1e300 FLOPs reaches it (it lies just short of the asymptote)"
    elif law.supports("asymptote"):
        inf = float(law.asymptote(fid))
        shown = (f"accuracy {float(law.to_accuracy(inf, acc_map)):.4g}"
                 if asked == "accuracy" else f"{qn} {inf:.4g}")
        why = f"the law's asymptote at FID {fid:g} is {shown} (as N, D → ∞)"
    else:
        why = f"the law's {qn} does not move toward it as FLOPs grow"
    p.out["note"] = f"unreachable: target {asked} {target:g}: {why}"
    return False


def _or_nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _clip_accuracies(p: _Prediction) -> None:
    """Accuracies (and their bands) into [0, 1]; ``accuracy_clipped`` names those moved."""
    clipped = []
    for name, v in list(p.out.items()):
        if name.startswith("accuracy") and isinstance(v, float) and not 0.0 <= v <= 1.0:
            p.out[name] = min(1.0, max(0.0, v))
            clipped.append(name)
    for name, b in p.bands.items():
        if name.startswith("accuracy") and b:
            p.bands[name] = [min(1.0, max(0.0, e)) for e in b]
    if clipped:
        p.out["accuracy_clipped"] = clipped


def _extrapolation(p: _Prediction) -> None:
    """How many times beyond the fitted ranges the query and its optimum lie, per axis."""
    ranges = p.law.ranges()
    if not ranges:
        p.out["extrapolation"] = None
        return
    q, out = p.q, p.out
    values = {"params": [q["n"], out.get("n_opt")], "samples": [q["d"], out.get("d_opt")],
              "flops": [q["flops"], out.get("train_flops")]}
    ext: dict[str, float] = {}
    far = []
    for axis, span in ranges.items():
        vs = [v for v in values[axis] if isinstance(v, float) and v > 0]
        if not vs:
            continue
        lo, hi = span
        factor, worst = max((max(v / hi, lo / v, 1.0), v) for v in vs)
        ext[axis] = factor
        if factor > EXTRAPOLATION_WARN:
            name = p.law.x if axis == "flops" and p.law.x != "train_flops" else axis
            far.append(f"{name} {worst:.3g} is {factor:.3g}× beyond the fitted range "
                       f"[{lo:.3g}, {hi:.3g}]")
    out["extrapolation"] = ext
    if far:
        out["extrapolation_warning"] = ("warning: extrapolating: " + "; ".join(far)
                                        + f" (law {p.law.name!r})")


EXPONENTS_NOTE = ("a, b are the FID-0 exponents and do not apply at FID > 0 for this law (Table 3 "
                  "shows '–' there): a_local, b_local are d ln N*/d ln F, d ln D*/d ln F at "
                  "this budget and FID")


def _exponents(p: _Prediction) -> None:
    """Table 3's a, b (N* ∝ F^a, D* ∝ F^b) where they apply and, where the exponents vary,
    the local ones at the budget (alone at FID > 0, with :data:`EXPONENTS_NOTE`)."""
    law, flops, fid = p.law, p.q["flops"], p.q["fid"]
    if not law.approach.constant_exponents and fid > 0:
        a_loc, b_loc = law.local_exponents(flops, fid)
        p.out["a_local"], p.out["b_local"] = _finite(a_loc), _finite(b_loc)
        p.out["exponents_note"] = EXPONENTS_NOTE
        return
    if law.supports("derived"):
        der = law.approach.derived(law.params)
        if "a" in der and "b" in der:
            p.out["a"], p.out["b"] = _finite(der["a"]), _finite(der["b"])
            p.band("a", lambda s: law.approach.derived(s)["a"])
            p.band("b", lambda s: law.approach.derived(s)["b"])
    if not law.approach.constant_exponents:
        a_loc, b_loc = law.local_exponents(flops, fid)
        p.out["a_local"], p.out["b_local"] = _finite(a_loc), _finite(b_loc)


def _e_prime(p: _Prediction) -> None:
    """Table 3's E′ beside the asymptote, each labelled as the paper defines it: Approach 2's
    asymptote is E′ = E(1+FID)^ε; Approach 3's adds the data-quality floor (Q·FID)^κ to
    E′ = E + ε ln(1+FID)."""
    law, fid = p.law, p.q["fid"]
    fn = getattr(law.approach, "e_prime", None)
    if fn is not None:
        p.out["e_prime"] = float(fn(law.params, fid))
        p.band("e_prime", lambda s: fn(s, fid))
        p.out["asymptote_kind"] = ("quality-inclusive: (Q·FID)^κ + E′ (Eq. 5 as N, D → ∞); "
                                   "Table 3's E′ = E + ε ln(1+FID) is e_prime")
    elif law.form == "approach2" and p.qn == "loss":
        p.out["e_prime"] = p.out["loss_inf"]
        p.out["asymptote_kind"] = "E′ = E·(1+FID)^ε (Eq. 3 as N, D → ∞; Table 3's E′)"


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _tradeoff(p: _Prediction) -> None:
    """Eq. 6 for ``omega_n``: ω_D, the compute overhead and the trade-off's N and D."""
    law, flops, fid, wn = p.law, p.q["flops"], p.q["fid"], p.q["omega_n"]
    wd, overhead = law.tradeoff(flops, wn, fid)
    n_opt, d_opt = p.out["n_opt"], p.out["d_opt"]
    p.out.update(omega_n=wn, omega_d=_finite(wd), compute_overhead=_finite(overhead),
                 n_tradeoff=wn * n_opt,
                 d_tradeoff=wd * d_opt if math.isfinite(wd) else None)
    if not math.isfinite(wd):
        p.out["note"] = (f"no data size reaches the optimal {p.qn} with a model "
                         f"{wn:g}× the optimal size")
    p.band("compute_overhead", lambda s: law.tradeoff(flops, wn, fid, s)[1])


def predict_one(law: Law, query: Mapping[str, Any], accuracy: bool = False,
                acc_map: str = "auto", where: str = "query") -> dict[str, Any]:
    """The payload of one ``prediction`` record (see the module docstring)."""
    q = _checked_query(law, query, where)
    p = _Prediction(law, q, accuracy, acc_map)
    _notes(p, query)
    if (q["target_accuracy"] is not None or q["target_loss"] is not None) and not _inverse(
            p, acc_map):
        if law.supports("asymptote"):
            p.add(f"{p.qn}_inf", float(law.asymptote(q["fid"])),
                  lambda s: law.asymptote(q["fid"], s))
        return p.finish()
    if q["n"] is not None:
        _at_nd(p)
    if law.supports("asymptote"):
        p.add(f"{p.qn}_inf", float(law.asymptote(q["fid"])), lambda s: law.asymptote(q["fid"], s))
        _e_prime(p)
    if q["flops"] is not None:
        _at_budget(p)
        if q["omega_n"] is not None:
            _tradeoff(p)
    return p.finish()


def prediction_record(law: Law, query: Mapping[str, Any], accuracy: bool = False,
                      acc_map: str = "auto", where: str = "query", command: str | None = None
                      ) -> dict[str, Any]:
    """:func:`predict_one` as a whole ``prediction`` record, with provenance."""
    config = {"law": law.spec, "accuracy": accuracy, "acc_map": acc_map,
              "flops_per_param_sample": law.k_override}
    return make_record("prediction", predict_one(law, query, accuracy, acc_map, where),
                       command=command, config=config)


def iter_predictions(law: Law, source: str = "-", stdin: IO[str] | None = None, *,
                     fid: float | None = None, omega_n: float | None = None,
                     accuracy: bool = False, acc_map: str = "auto",
                     command: str | None = None) -> Iterator[dict[str, Any]]:
    """One ``prediction`` record per JSONL query of ``source``; ``fid`` and ``omega_n`` are
    defaults for queries that do not give them."""
    for where, q in iter_queries(source, stdin=stdin):
        if fid is not None and q.get("fid") is None and q.get("FID") is None:
            q["fid"] = fid
        if omega_n is not None and q.get("omega_n") is None:
            q["omega_n"] = omega_n
        yield prediction_record(law, q, accuracy, acc_map, where, command)
