"""Approach 2 of Bartoldson et al. (2024): a Chinchilla-style law with data-quality terms.

    L(N, D, FID) = A / N^α + B' / D^β + E'
    E' = E · (1 + FID)^ε,   B' = B · (1 + FID)^ζ

which is the paper's Eq. 3, ``E' = exp(log E + log(1 + Quality⁻¹)·ε)`` with Quality = 1/FID and
natural logarithms, so FID = 0 gives exactly ``A/N^α + B/D^β + E``. N is the parameter count,
D the number of training samples seen, FID the synthetic data's FID.

Internally θ = (a, b, e, α, β, ε, ζ) with a = ln A, b = ln B, e = ln E, and

    ln L̂ = logsumexp(a − α ln N,  b + ζ ln(1+FID) − β ln D,  e + ε ln(1+FID)).

Fitting (appendix F.2): stage 1 fits (a, b, e, α, β) on the base dataset (the FID group with the
most runs) with ε = ζ = 0 from the 5⁵-point grid; stage 2 fits (ε, ζ) on the other datasets from
the 4×3 grid, holding the rest; then — beyond the paper — all seven parameters are polished
jointly on all data, so the result is a true optimum of the full objective.

:class:`Approach2` is the registered approach (``approach2``, ``--approach 2``): the fit
pipeline of :mod:`advscale.laws.parametric` with this search, and Eq. 3's predictions (Eq. 4's
optimum and Eq. 6's trade-off analytically, :mod:`advscale.laws.optimal`).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.errors import AdvscaleError
from advscale.laws import notebook
from advscale.laws.approach import FitData, register_approach
from advscale.laws.data import Point
from advscale.laws.objective import HUBER_DELTA, Design, Problem
from advscale.laws.optimal import budget_approach2, optimal_approach2, tradeoff_approach2
from advscale.laws.optimize import FitResult, MultiResult, multistart, refit_replicates
from advscale.laws.parametric import ParametricApproach, Search

NAMES = ("a", "b", "e", "alpha", "beta", "epsilon", "zeta")
PUBLIC = ("A", "B", "E", "alpha", "beta", "epsilon", "zeta")

# Appendix F.2 initialisation grids (a, b, e are logs of A, B, E).
GRID_STAGE1 = {
    "a": [0, 1, 2, 5, 10],
    "b": [0, 1, 2, 5, 10],
    "e": [-1, -5, 0, 0.5, 1],
    "alpha": [0, 0.1, 0.25, 0.5, 1],
    "beta": [0, 0.1, 0.25, 0.5, 1],
}
GRID_STAGE2 = {"zeta": [-3, -0.15, 0.15, 0.3], "epsilon": [0.01, 0.1, 0.2]}

# The grids of the authors' code (scaling_law_utils.py: grid_search_lbfgs_minimize and
# grid_search_lbfgs_minimize_FID_with_base): e has -0.5 where the text has -5, ζ -0.3 for -3.
GRID_STAGE1_CODE = {**GRID_STAGE1, "e": [-1, -0.5, 0, 0.5, 1]}
GRID_STAGE2_CODE = {"zeta": [-0.3, -0.15, 0.15, 0.3], "epsilon": [0.01, 0.1, 0.2]}


class Approach2Form:
    """Eq. 3 in log parametrisation, vectorised over K parameter sets."""

    name = "approach2"
    names = NAMES
    lower = np.array([-30.0, -30.0, -30.0, 0.0, 0.0, -10.0, -10.0])
    upper = np.array([30.0, 30.0, 30.0, 5.0, 5.0, 10.0, 10.0])

    @staticmethod
    def _terms(theta: np.ndarray, x: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.asarray(theta, dtype=float)
        a, b, e, al, be, ep, ze = (t[..., i, None] for i in range(7))
        t1 = a - al * x.log_n
        t2 = b + ze * x.u - be * x.log_d
        t3 = e + ep * x.u
        return np.broadcast_arrays(t1, t2, t3)  # each (K, n)

    def log_predict(self, theta: np.ndarray, x: Design) -> np.ndarray:
        t1, t2, t3 = self._terms(theta, x)
        m = np.maximum(np.maximum(t1, t2), t3)
        return np.log(np.exp(t1 - m) + np.exp(t2 - m) + np.exp(t3 - m)) + m

    def log_predict_jac(self, theta: np.ndarray, x: Design) -> tuple[np.ndarray, np.ndarray]:
        t1, t2, t3 = self._terms(theta, x)
        m = np.maximum(np.maximum(t1, t2), t3)
        p1, p2, p3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(t3 - m)
        tot = p1 + p2 + p3
        lp = np.log(tot) + m
        s1, s2, s3 = p1 / tot, p2 / tot, p3 / tot  # softmax weights: d lnL̂ / d term
        jac = np.empty(lp.shape + (7,))
        jac[..., 0] = s1
        jac[..., 1] = s2
        jac[..., 2] = s3
        jac[..., 3] = -s1 * x.log_n
        jac[..., 4] = -s2 * x.log_d
        jac[..., 5] = s3 * x.u
        jac[..., 6] = s2 * x.u
        return lp, jac

    @staticmethod
    def to_public(theta: np.ndarray) -> dict[str, float]:
        a, b, e, al, be, ep, ze = (float(v) for v in theta)
        return {"A": np.exp(a), "B": np.exp(b), "E": np.exp(e), "alpha": al, "beta": be,
                "epsilon": ep, "zeta": ze}

    @staticmethod
    def from_public(p: dict[str, float]) -> np.ndarray:
        return np.array([np.log(p["A"]), np.log(p["B"]), np.log(p["E"]), p["alpha"],
                         p["beta"], p.get("epsilon", 0.0), p.get("zeta", 0.0)], dtype=float)


FORM = Approach2Form()


def predict_loss(params: dict[str, float], n, d, fid=0.0) -> np.ndarray:
    """Eq. 3: the loss for N parameters, D samples and synthetic data of the given FID."""
    n, d, fid = (np.asarray(v, dtype=float) for v in (n, d, fid))
    bq = params["B"] * (1 + fid) ** params.get("zeta", 0.0)
    eq = params["E"] * (1 + fid) ** params.get("epsilon", 0.0)
    return params["A"] / n ** params["alpha"] + bq / d ** params["beta"] + eq


def asymptote(params: dict[str, float], fid=0.0) -> np.ndarray:
    """The loss as N, D → ∞: ``E' = E · (1 + FID)^ε``."""
    return np.asarray(params["E"]) * (1 + np.asarray(fid, float)) ** np.asarray(
        params.get("epsilon", 0.0))


def derived(params: dict[str, float], fid: float = 0.0,
            flops_per_param_sample: float = PAPER_FLOPS_PER_PARAM_SAMPLE) -> dict[str, float]:
    """Eq. 4's exponents a = β/(α+β), b = α/(α+β) and G = (αA/(βB'))^(1/(α+β)) at ``fid``."""
    al, be = params["alpha"], params["beta"]
    out = {"a": float("nan"), "b": float("nan"), "G": float("nan")}
    if al + be > 0:
        out["a"] = be / (al + be)
        out["b"] = al / (al + be)
        bq = params["B"] * (1 + fid) ** params.get("zeta", 0.0)
        if al > 0 and be > 0:
            out["G"] = (al * params["A"] / (be * bq)) ** (1 / (al + be))
    return out


def grid(stage: int, grids: str = "appendix") -> np.ndarray:
    """A stage's initialisation grid as an array of starts (free parameters only):
    appendix F.2's (``grids="appendix"``) or the authors' code's (``"code"``)."""
    if grids == "code":
        g = GRID_STAGE1_CODE if stage == 1 else GRID_STAGE2_CODE
    else:
        g = GRID_STAGE1 if stage == 1 else GRID_STAGE2
    return np.array(list(itertools.product(*g.values())), dtype=float)


@dataclass
class Approach2Fit:
    """The result of the two-stage fit and the joint polish."""

    theta: np.ndarray
    objective: float
    stages: dict = field(default_factory=dict)
    fixed_quality: bool = False
    base_fid: float = 0.0
    polish: FitResult | None = None
    anchoring: dict | None = None


@dataclass
class Stages:
    """How the two stages run (:class:`advscale.laws.protocol.Protocol`'s Approach 2 choices).

    ``base_rows``/``stage2_rows``: the rows of each stage (None: the FID group with the most
    runs, and every other row); ``anchor``: ``fid0`` (stage-1 B, E taken as FID-0 values) or
    ``base`` (stage 2 anchored at the base dataset's FID, then B, E rescaled to FID 0);
    ``joint_polish``: polish all 7 parameters on all rows afterwards; ``grids``: ``appendix``
    or ``code``.
    """

    base_rows: np.ndarray | None = None
    stage2_rows: np.ndarray | None = None
    anchor: str = "fid0"
    joint_polish: bool = True
    grids: str = "appendix"


def base_group(x: Design) -> np.ndarray:
    """Rows of the FID group with the most runs (ties: the lowest FID): the paper's DG set."""
    fids = np.unique(x.fid)
    runs = [np.unique(x.run[x.fid == f]).size for f in fids]
    best = fids[int(np.argmax(runs))]
    return np.flatnonzero(x.fid == best)


def _anchored(x: Design, u0: float) -> Design:
    """``x`` with ln(1 + FID) measured from the base FID's (stage 2 anchored at the base)."""
    out = x.take(np.arange(len(x)))
    out.u = x.u - u0
    return out


def _to_fid0(theta: np.ndarray, u0: float) -> np.ndarray:
    """θ whose b, e hold at the base FID (ln(1 + FID) = u0) → θ of Eq. 3 at FID 0."""
    out = np.array(theta, dtype=float)
    out[1] -= out[6] * u0
    out[2] -= out[5] * u0
    return out


def _stage1(x: Design, how: Stages, top_k: int, screen_iters: int, full_grid: bool,
            delta: float, log) -> tuple[Problem, MultiResult, np.ndarray]:
    """Stage 1: A, B, E, α, β on the base rows with ε = ζ = 0; and the rows it used."""
    base_rows = base_group(x) if how.base_rows is None else how.base_rows
    xb = x.take(base_rows)
    if how.base_rows is None and (np.unique(xb.n).size < 3 or np.unique(xb.d).size < 3):
        base_rows = np.arange(len(x))
        xb = x
    starts1 = grid(1, how.grids)
    if not full_grid:
        starts1 = starts1[:: max(1, len(starts1) // 256)]
    p1 = Problem(FORM, xb, np.zeros(7), np.arange(5), delta)
    s1 = multistart(p1, starts1, top_k=top_k, screen_iters=screen_iters)
    log(f"approach 2 stage 1: {len(starts1)} starts on {len(xb)} points at FID "
        f"{float(np.median(xb.fid)):g}: objective {s1.best.objective:.6g}")
    return p1, s1, base_rows


def _single_fid(x: Design, p1: Problem, s1: MultiResult, stages: dict, delta: float
                ) -> Approach2Fit:
    """One FID: ε, ζ are not identifiable; the stage-1 law polished on all the data."""
    theta0 = p1.full(s1.best.z)
    pj = Problem(FORM, x, theta0, np.arange(5), delta)
    joint = multistart(pj, s1.best.z[None], top_k=1, screen_iters=0)
    stages["joint"] = joint.summary()
    return Approach2Fit(pj.full(joint.best.z), joint.best.objective, stages, True,
                        float(x.fid[0]), joint.best)


def fit(x: Design, *, top_k: int = 8, screen_iters: int = 30, full_grid: bool = True,
        delta: float = HUBER_DELTA, log=None, how: Stages | None = None) -> Approach2Fit:
    """Fit Eq. 3 to ``x`` by the paper's two-stage procedure, then (by default) polish all 7
    jointly; ``how`` sets the stages' rows, anchoring, polish and grids.

    With fewer than two distinct FIDs, ε and ζ are not identifiable: they are fixed at 0 and
    the law then holds at the data's single FID (``fixed_quality``).
    """
    log = log or (lambda msg: None)
    how = how or Stages()
    p1, s1, base_rows = _stage1(x, how, top_k, screen_iters, full_grid, delta, log)
    stages: dict = {"stage1": s1.summary()}
    if np.unique(x.fid).size < 2:
        return _single_fid(x, p1, s1, stages, delta)
    rows2 = (np.setdiff1d(np.arange(len(x)), base_rows) if how.stage2_rows is None
             else how.stage2_rows)
    x2 = x.take(rows2) if rows2.size else x
    base_fid = float(np.median(x.fid[base_rows]))
    u0 = float(np.log1p(base_fid)) if how.anchor == "base" else 0.0
    x2 = _anchored(x2, u0) if u0 else x2
    chains = []
    for cand in (s1.candidates if how.joint_polish else s1.candidates[:1]):
        p2 = Problem(FORM, x2, p1.full(cand.z), np.array([6, 5]), delta)  # (zeta, epsilon)
        s2 = multistart(p2, grid(2, how.grids), top_k=2, screen_iters=screen_iters)
        chains.append(_to_fid0(p2.full(s2.best.z), u0))
    stages["stage2"] = {"starts_per_chain": len(grid(2, how.grids)), "chains": len(chains),
                        "anchor": how.anchor, "points": len(x2)}
    pj = Problem.all_free(FORM, x, delta)
    anchoring = _anchoring(chains[0], base_fid, u0) if how.anchor == "base" else None
    if not how.joint_polish:
        theta = chains[0]
        objective = float(pj.objective(theta))
        log(f"approach 2 two-stage result (no joint polish) on {len(x)} points: objective "
            f"{objective:.6g}")
        return Approach2Fit(theta, objective, stages, False, 0.0, None, anchoring)
    joint = multistart(pj, np.array(chains), top_k=len(chains), screen_iters=0)
    log(f"approach 2 joint polish of {len(chains)} two-stage results on {len(x)} points: "
        f"objective {joint.best.objective:.6g}")
    stages["joint"] = joint.summary()
    return Approach2Fit(joint.best.z.copy(), joint.best.objective, stages, False, 0.0,
                        joint.best, anchoring)


def fit_notebook(x: Design, *, full_grid: bool = True, delta: float = HUBER_DELTA, log=None,
                 how: Stages | None = None) -> Approach2Fit:
    """Eq. 3 by the authors' optimiser (:mod:`advscale.laws.notebook`): stage 1 on the base
    rows, stage 2 on the stage-2 rows anchored at the base FID (``how.anchor == "base"``, the
    code's; else at FID 0), B and E rescaled to FID 0; ``how.joint_polish`` then polishes all
    7 with advscale's optimiser. ``objective`` is the summed Huber loss on all of ``x``."""
    log = log or (lambda msg: None)
    how = how or Stages()
    base_rows = base_group(x) if how.base_rows is None else how.base_rows
    z1, f1, n1 = notebook.stage1(x.take(base_rows), delta, 1 if full_grid else 12)
    log(f"approach 2 stage 1 (notebook optimiser): {n1} L-BFGS-B runs on {len(base_rows)} "
        f"points: mean Huber {f1:.6g}")
    stages: dict = {"optimizer": "notebook",
                    "stage1": {"starts": n1, "notebook_objective": f1}}
    theta = np.zeros(7)
    theta[:5] = z1
    fixed = np.unique(x.fid).size < 2
    base_fid = float(np.median(x.fid[base_rows]))
    anchoring = None
    if not fixed:
        rows2 = (np.setdiff1d(np.arange(len(x)), base_rows) if how.stage2_rows is None
                 else how.stage2_rows)
        fid_at = base_fid if how.anchor == "base" else 0.0
        (ep, ze), f2, n2 = notebook.stage2(x.take(rows2) if rows2.size else x, z1, fid_at,
                                           delta)
        stages["stage2"] = {"starts": n2, "notebook_objective": f2, "anchor": how.anchor,
                            "points": int(rows2.size)}
        theta[5], theta[6] = ep, ze
        u0 = float(np.log1p(fid_at))
        theta = _to_fid0(theta, u0)
        if how.anchor == "base":
            anchoring = _anchoring(theta, base_fid, u0)
    pj = Problem(FORM, x, theta, np.arange(5) if fixed else np.arange(7), delta)
    objective = float(pj.objective(pj.free_of(theta)))
    polished = None
    if how.joint_polish:
        joint = multistart(pj, pj.free_of(theta)[None], top_k=1, screen_iters=0)
        theta, objective, polished = pj.full(joint.best.z), joint.best.objective, joint.best
        stages["joint"] = joint.summary()
    log(f"approach 2 (notebook optimiser) on {len(x)} points: objective {objective:.6g}")
    return Approach2Fit(theta, objective, stages, fixed, base_fid if fixed else 0.0, polished,
                        anchoring)


def _anchoring(theta_fid0: np.ndarray, base_fid: float, u0: float) -> dict:
    """The fit record's ``anchoring``: the base FID and B, E as stage 1 fitted them there."""
    return {"base_fid": base_fid,
            "params_at_base_fid": {"B": float(np.exp(theta_fid0[1] + theta_fid0[6] * u0)),
                                   "E": float(np.exp(theta_fid0[2] + theta_fid0[5] * u0))}}


def refit(x: Design, starts: np.ndarray, fixed_quality: bool = False,
          delta: float = HUBER_DELTA) -> FitResult:
    """Polish from given full θ starts on ``x`` (bootstrap replicates)."""
    free = np.arange(5) if fixed_quality else np.arange(7)
    base = np.array(starts[0], dtype=float)
    pr = Problem(FORM, x, base, free, delta)
    res = multistart(pr, np.asarray(starts)[:, free], top_k=len(starts), screen_iters=0,
                     lbfgs=False)
    out = res.best
    out.z = pr.full(out.z)
    return out


def refit_batch(x: Design, theta: np.ndarray, counts: np.ndarray, fixed_quality: bool = False,
                delta: float = HUBER_DELTA) -> np.ndarray:
    """Refit K bootstrap replicates at once: rows weighted by ``counts`` (K, n), from ``theta``.

    See :func:`advscale.laws.optimize.refit_replicates`.
    """
    free = np.arange(5) if fixed_quality else np.arange(7)
    return refit_replicates(FORM, x, theta, free, counts, delta)


def check_design(x: Design) -> None:
    """Refuse data that cannot identify Eq. 3 (too few distinct N or D, or too few points)."""
    nn, nd = np.unique(x.n).size, np.unique(x.d).size
    if nn < 3 or nd < 3:
        raise AdvscaleError(
            f"approach 2 needs at least 3 distinct model sizes N and 3 distinct data sizes D; "
            f"got {nn} N and {nd} D after filtering"
        )
    if len(x) < 8:
        raise AdvscaleError(f"approach 2 needs at least 8 points; got {len(x)} after filtering")


def _datasets(points: list[Point]) -> np.ndarray:
    return np.array([p.rec["dataset"] for p in points], dtype=object)


@register_approach
class Approach2(ParametricApproach):
    """Eq. 3 fitted by appendix F.2's two stages and a joint polish; Eq. 4 and 6 analytic."""

    name = "approach2"
    option = "2"
    params = PUBLIC
    form = FORM
    top_k = 8
    """Distinct screened starts polished tightly (``optimize.multistart``)."""
    screen_iters = 30
    """Vectorised damped Gauss–Newton steps every grid start takes before ranking."""

    def check_design(self, x: Design) -> None:
        check_design(x)

    def draws(self, figure: str, law: dict[str, Any]) -> bool:
        """The quality panels only for a law fitted across qualities (ε, ζ not held at 0
        because its data had one FID)."""
        if figure == "quality" and {"epsilon", "zeta"} & set(law.get("fixed") or []):
            return False
        return super().draws(figure, law)

    def select(self, data: FitData) -> FitData:
        """With a named base dataset: only its points and the stage-2 datasets' points."""
        proto = data.protocol
        if proto.base_dataset is None:
            return data
        names = sorted({p.rec["dataset"] for p in data.points})
        wanted = (proto.base_dataset, *proto.stage2_datasets)
        missing = [w for w in wanted if w not in names]
        if missing:
            raise AdvscaleError(
                f"approach 2: dataset(s) {', '.join(map(repr, missing))} not in the records "
                f"(their datasets: {', '.join(names[:12])}); name yours with base_dataset "
                f"and stage2_datasets", field="base_dataset,stage2_datasets")
        if not proto.stage2_datasets:
            return data
        keep = [p for p in data.points if p.rec["dataset"] in wanted]
        data.log(f"approach 2: base dataset {proto.base_dataset!r}, stage 2 on "
                 f"{', '.join(proto.stage2_datasets)}: {len(keep)} of {len(data.points)} "
                 f"points")
        return dataclasses.replace(data, points=keep)

    def _stages(self, data: FitData) -> Stages:
        proto = data.protocol
        how = Stages(anchor=proto.anchor, joint_polish=proto.joint_polish, grids=proto.grids)
        if proto.base_dataset is not None:
            names = _datasets(data.points)
            how.base_rows = np.flatnonzero(names == proto.base_dataset)
            if proto.stage2_datasets:
                how.stage2_rows = np.flatnonzero(np.isin(names, proto.stage2_datasets))
        return how

    def search(self, x: Design, data: FitData) -> Search:
        if data.protocol.optimizer == "notebook":
            res = fit_notebook(x, full_grid=data.full_grid, delta=data.delta, log=data.log,
                               how=self._stages(data))
        else:
            res = fit(x, top_k=self.top_k, screen_iters=self.screen_iters,
                      full_grid=data.full_grid, delta=data.delta, log=data.log,
                      how=self._stages(data))
        fixed = ["epsilon", "zeta"] if res.fixed_quality else []
        if res.fixed_quality:
            data.log(f"one FID ({res.base_fid:g}) in the data: epsilon and zeta fixed at 0; "
                     f"the law holds at that FID only")

        def replicates(counts: np.ndarray) -> np.ndarray:
            return refit_batch(x, res.theta, counts, res.fixed_quality, data.delta)

        free = np.arange(5) if res.fixed_quality else np.arange(7)
        extra = {}
        if res.anchoring is not None:
            extra["anchoring"] = {"base_dataset": data.protocol.base_dataset, **res.anchoring}
        return Search(res.theta, res.objective, res.stages, free, replicates, fixed, extra)

    def predict(self, params: dict, n, d, fid=0.0) -> np.ndarray:
        return predict_loss(params, n, d, fid)

    def asymptote(self, params: dict, fid=0.0) -> np.ndarray:
        return asymptote(params, fid)

    def optimal(self, params: dict, flops: float, fid=0.0,
                k: float = PAPER_FLOPS_PER_PARAM_SAMPLE) -> tuple[float, float, float]:
        n, d = optimal_approach2(params, flops, fid, k)
        return float(n), float(d), float(predict_loss(params, n, d, fid))

    def tradeoff(self, params: dict, n_opt: float, d_opt: float, omega_n: float, fid=0.0
                 ) -> float:
        return float(tradeoff_approach2(params, n_opt, d_opt, omega_n, fid))

    def inverse(self, params: dict, value: float, fid=0.0,
                k: float = PAPER_FLOPS_PER_PARAM_SAMPLE, higher: bool = False) -> float | None:
        """Eq. 4's frontier inverted in closed form (:func:`optimal.budget_approach2`)."""
        return None if higher else budget_approach2(params, value, fid, k)

    def derived(self, params: dict) -> dict[str, float]:
        return derived(params)
