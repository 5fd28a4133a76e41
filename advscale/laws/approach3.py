"""Approach 3 of Bartoldson et al. (2024): a data-quality bottleneck on the benefit of data.

    L(N, D, FID) = A / N^α + (B / D + (Q · FID)^(κ/β))^β + E + ε · ln(1 + FID)

the paper's Eq. 5 with Q/Quality = Q·FID (Quality = 1/FID). At FID = 0 it is
``A/N^α + B^β/D^β + E``; as D → ∞ the data term tends to ``(Q·FID)^κ`` (overfitting to data of
limited quality). The logarithm in E' is natural, as in Approach 2.

Internally θ = (a, b, e, q, α, β, κ, ε) with a = ln A, b = ln B, e = ln E, q = ln Q and

    ln L̂ = ln( exp(a − α ln N) + exp(β · v) + exp(e) + ε ln(1+FID) ),
    v = logsumexp(b − ln D, (κ/β)(q + ln FID))     (v = b − ln D at FID = 0).

Fitting (appendix F.3) starts from the 648-point grid, screened and polished (all parameters
at once, as the paper does).

:class:`Approach3` is the registered approach (``approach3``, ``--approach 3``); its optimum
N*, D* and Eq. 6 trade-off are found numerically (:mod:`advscale.laws.optimal`).
"""

from __future__ import annotations

import itertools

import numpy as np

from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.errors import AdvscaleError
from advscale.laws import notebook
from advscale.laws.approach import FitData, register_approach
from advscale.laws.objective import HUBER_DELTA, Design, Problem
from advscale.laws.optimal import budget_numeric, optimal_numeric, tradeoff_numeric
from advscale.laws.optimize import FitResult, MultiResult, multistart, refit_replicates
from advscale.laws.parametric import ParametricApproach, Search

NAMES = ("a", "b", "e", "q", "alpha", "beta", "kappa", "epsilon")
PUBLIC = ("A", "B", "E", "Q", "alpha", "beta", "kappa", "epsilon")

# Appendix F.3 initialisation grid, in public units (A, B, E, Q are logged for θ).
GRID = {
    "A": [5, 6, 7],
    "B": [6500, 7000, 7500],
    "E": [0.6, 5],
    "Q": [0.01, 0.5],
    "alpha": [0.1, 0.2, 0.3],
    "beta": [0.1, 0.2, 0.3],
    "kappa": [0.8, 0.6],
    "epsilon": [0.01],
}

GRID_CODE = {**GRID, "E": [0.6, 0.5]}
"""The authors' code's grid (``Equation_1_5_That_Is_Chinchilla_At_FID0.get_grid_search_values``):
E starts at 0.5 where appendix F.3's text has 5."""

class Approach3Form:
    """Eq. 5 in log parametrisation, vectorised over K parameter sets."""

    name = "approach3"
    names = NAMES
    lower = np.array([-30.0, -30.0, -30.0, -30.0, 0.0, 1e-3, 0.0, 0.0])
    upper = np.array([30.0, 40.0, 30.0, 30.0, 5.0, 5.0, 20.0, 20.0])

    @staticmethod
    def _parts(theta: np.ndarray, x: Design):
        t = np.asarray(theta, dtype=float)
        a, b, e, q, al, be, ka, ep = (t[..., i, None] for i in range(8))
        t1 = a - al * x.log_n
        c1 = b - x.log_d
        lqf = q + x.log_fid  # −inf where FID = 0
        w = (ka / be) * lqf
        w = np.where(x.fid > 0, w, -np.inf)
        m = np.maximum(c1, w)
        ex1, ex2 = np.exp(c1 - m), np.exp(w - m)
        sv = ex1 + ex2
        v = np.log(sv) + m
        s1, s2 = ex1 / sv, ex2 / sv
        t2 = be * v
        e3 = np.exp(e) + ep * x.u
        return t1, t2, e3, v, s1, s2, lqf, w, (a, b, e, q, al, be, ka, ep)

    def log_predict(self, theta: np.ndarray, x: Design) -> np.ndarray:
        t1, t2, e3, *_ = self._parts(theta, x)
        m = np.maximum(t1, t2)
        return np.log(np.exp(t1 - m) + np.exp(t2 - m) + e3 * np.exp(-m)) + m

    def log_predict_jac(self, theta: np.ndarray, x: Design) -> tuple[np.ndarray, np.ndarray]:
        t1, t2, e3, v, s1, s2, lqf, w, (a, b, e, q, al, be, ka, ep) = self._parts(theta, x)
        m = np.maximum(t1, t2)
        p1, p2, p3 = np.exp(t1 - m), np.exp(t2 - m), e3 * np.exp(-m)
        tot = p1 + p2 + p3
        lp = np.log(tot) + m
        g1, g2, g3 = p1 / tot, p2 / tot, np.exp(-m) / tot  # d lnL̂ / d(t1), d(t2), d(E')
        lqf0 = np.where(x.fid > 0, lqf, 0.0)
        w0 = np.where(x.fid > 0, w, 0.0)
        jac = np.empty(lp.shape + (8,))
        jac[..., 0] = g1                       # a
        jac[..., 1] = g2 * be * s1             # b
        jac[..., 2] = g3 * np.exp(e)           # e
        jac[..., 3] = g2 * s2 * ka             # q
        jac[..., 4] = -g1 * x.log_n            # alpha
        jac[..., 5] = g2 * (v - s2 * w0)       # beta
        jac[..., 6] = g2 * s2 * lqf0           # kappa
        jac[..., 7] = g3 * x.u                 # epsilon
        return lp, jac

    @staticmethod
    def to_public(theta: np.ndarray) -> dict[str, float]:
        a, b, e, q, al, be, ka, ep = (float(v) for v in theta)
        return {"A": np.exp(a), "B": np.exp(b), "E": np.exp(e), "Q": np.exp(q), "alpha": al,
                "beta": be, "kappa": ka, "epsilon": ep}

    @staticmethod
    def from_public(p: dict[str, float]) -> np.ndarray:
        return np.array([np.log(p["A"]), np.log(p["B"]), np.log(p["E"]), np.log(p["Q"]),
                         p["alpha"], p["beta"], p["kappa"], p["epsilon"]], dtype=float)


FORM = Approach3Form()


def predict_loss(params: dict[str, float], n, d, fid=0.0) -> np.ndarray:
    """Eq. 5: the loss for N parameters, D samples and synthetic data of the given FID."""
    n, d, fid = (np.asarray(v, dtype=float) for v in (n, d, fid))
    be = params["beta"]
    with np.errstate(divide="ignore"):
        qterm = np.where(fid > 0, (params["Q"] * fid) ** (params["kappa"] / be), 0.0)
    data = (params["B"] / d + qterm) ** be
    return (params["A"] / n ** params["alpha"] + data + params["E"]
            + params["epsilon"] * np.log1p(fid))


def asymptote(params: dict[str, float], fid=0.0) -> np.ndarray:
    """The loss as N, D → ∞: ``(Q·FID)^κ + E + ε ln(1+FID)``."""
    fid = np.asarray(fid, dtype=float)
    return (np.where(fid > 0, (params["Q"] * fid) ** params["kappa"], 0.0) + params["E"]
            + params["epsilon"] * np.log1p(fid))


def e_prime(params: dict[str, float], fid=0.0) -> np.ndarray:
    """Table 3's E′ for Approach 3: ``E + ε ln(1+FID)``, the quality-adjusted irreducible loss
    *without* the data-quality floor ``(Q·FID)^κ`` that :func:`asymptote` adds (0.5513 at FID
    1.76 with the notebook's constants, where the asymptote is 0.619)."""
    return params["E"] + params["epsilon"] * np.log1p(np.asarray(fid, dtype=float))


def derived(params: dict[str, float]) -> dict[str, float]:
    """FID = 0 equivalents: a = β/(α+β), b = α/(α+β), and B^β (compare with Approach 2's B)."""
    al, be = params["alpha"], params["beta"]
    s = al + be
    return {"a": be / s if s > 0 else float("nan"), "b": al / s if s > 0 else float("nan"),
            "B_pow_beta": params["B"] ** be}


def grid(grids: str = "appendix") -> np.ndarray:
    """The appendix F.3 grid (``grids="code"``: the code's) as θ starts (648 of them)."""
    g = GRID_CODE if grids == "code" else GRID
    rows = []
    for combo in itertools.product(*g.values()):
        p = dict(zip(g, combo, strict=True))
        rows.append(FORM.from_public(p))
    return np.array(rows)


def fit(x: Design, *, top_k: int = 8, screen_iters: int = 40, full_grid: bool = True,
        delta: float = HUBER_DELTA, log=None, grids: str = "appendix") -> MultiResult:
    """Fit Eq. 5 to ``x`` from the appendix F.3 grid (screened, best starts polished)."""
    log = log or (lambda msg: None)
    starts = grid(grids)
    if not full_grid:
        starts = starts[::8]
    pr = Problem.all_free(FORM, x, delta)
    res = multistart(pr, starts, top_k=top_k, screen_iters=screen_iters)
    log(f"approach 3: {len(starts)} starts on {len(x)} points: objective "
        f"{res.best.objective:.6g}")
    return res


def refit(x: Design, starts: np.ndarray, delta: float = HUBER_DELTA) -> FitResult:
    """Polish from given θ starts on ``x`` (bootstrap replicates)."""
    pr = Problem.all_free(FORM, x, delta)
    return multistart(pr, np.asarray(starts), top_k=len(starts), screen_iters=0,
                      lbfgs=False).best


def refit_batch(x: Design, theta: np.ndarray, counts: np.ndarray, delta: float = HUBER_DELTA
                ) -> np.ndarray:
    """Refit K bootstrap replicates at once: rows weighted by ``counts`` (K, n), from ``theta``.

    See :func:`advscale.laws.optimize.refit_replicates`.
    """
    return refit_replicates(FORM, x, theta, np.arange(8), counts, delta)


def check_design(x: Design) -> None:
    """Refuse data that cannot identify Eq. 5."""
    nn, nd = np.unique(x.n).size, np.unique(x.d).size
    nf = np.unique(x.fid[x.fid > 0]).size
    if nn < 3 or nd < 3:
        raise AdvscaleError(
            f"approach 3 needs at least 3 distinct model sizes N and 3 distinct data sizes D; "
            f"got {nn} N and {nd} D after filtering"
        )
    if nf < 2:
        raise AdvscaleError(
            f"approach 3 needs synthetic data of at least 2 distinct nonzero FIDs to identify "
            f"Q, κ and ε; got {nf}"
        )
    if len(x) < 10:
        raise AdvscaleError(f"approach 3 needs at least 10 points; got {len(x)} after filtering")


@register_approach
class Approach3(ParametricApproach):
    """Eq. 5 fitted from appendix F.3's grid; N*, D* and Eq. 6 found numerically."""

    name = "approach3"
    option = "3"
    params = PUBLIC
    form = FORM
    constant_exponents = False
    top_k = 8
    """Distinct screened starts polished tightly (``optimize.multistart``)."""
    screen_iters = 40
    """Vectorised damped Gauss–Newton steps every grid start takes before ranking."""

    def check_design(self, x: Design) -> None:
        check_design(x)

    def search(self, x: Design, data: FitData) -> Search:
        if data.protocol.optimizer == "notebook":
            return self._search_notebook(x, data)
        res = fit(x, top_k=self.top_k, screen_iters=self.screen_iters,
                  full_grid=data.full_grid, delta=data.delta, log=data.log,
                  grids=data.protocol.grids)
        theta = res.best.z.copy()

        def replicates(counts: np.ndarray) -> np.ndarray:
            return refit_batch(x, theta, counts, data.delta)

        return Search(theta, res.best.objective, res.summary(), np.arange(len(NAMES)), replicates)

    def _search_notebook(self, x: Design, data: FitData) -> Search:
        """The authors' optimiser on raw A, B, E, Q (:func:`notebook.approach3`)."""
        z, f, n = notebook.approach3(x, data.delta, 1 if data.full_grid else 8)
        if not np.all(z[:4] > 0):
            raise AdvscaleError(f"approach 3 (notebook optimiser): L-BFGS-B ended at A, B, E, "
                                f"Q = {', '.join(f'{v:.4g}' for v in z[:4])}; all must be > 0")
        theta = FORM.from_public(dict(zip(PUBLIC, (float(v) for v in z), strict=True)))
        pr = Problem.all_free(FORM, x, data.delta)
        objective = float(pr.objective(theta))
        data.log(f"approach 3 (notebook optimiser): {n} L-BFGS-B runs on {len(x)} points: "
                 f"mean Huber {f:.6g}, summed {objective:.6g}")

        def replicates(counts: np.ndarray) -> np.ndarray:
            return refit_batch(x, theta, counts, data.delta)

        info = {"optimizer": "notebook", "starts": n, "notebook_objective": f,
                "best_objective": objective}
        return Search(theta, objective, info, np.arange(len(NAMES)), replicates)

    def predict(self, params: dict, n, d, fid=0.0) -> np.ndarray:
        return predict_loss(params, n, d, fid)

    def asymptote(self, params: dict, fid=0.0) -> np.ndarray:
        return asymptote(params, fid)

    def e_prime(self, params: dict, fid=0.0) -> np.ndarray:
        return e_prime(params, fid)

    def optimal(self, params: dict, flops: float, fid=0.0,
                k: float = PAPER_FLOPS_PER_PARAM_SAMPLE) -> tuple[float, float, float]:
        return optimal_numeric(lambda n, d: predict_loss(params, n, d, fid), flops, k)

    def tradeoff(self, params: dict, n_opt: float, d_opt: float, omega_n: float, fid=0.0
                 ) -> float:
        return tradeoff_numeric(lambda n, d: predict_loss(params, n, d, fid), n_opt, d_opt,
                                omega_n)

    def inverse(self, params: dict, value: float, fid=0.0,
                k: float = PAPER_FLOPS_PER_PARAM_SAMPLE, higher: bool = False) -> float | None:
        """The optimal frontier L*(F) solved for ``value`` numerically (it falls to the
        asymptote)."""
        if higher:
            return None
        return budget_numeric(lambda f: self.optimal(params, f, fid, k)[2], value,
                              float(asymptote(params, fid)), k)

    def derived(self, params: dict) -> dict[str, float]:
        return derived(params)
