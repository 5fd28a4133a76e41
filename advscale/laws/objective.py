"""The fitting objective: the Huber loss of log-space residuals, summed, with its gradient.

Following Hoffmann et al. (2022) and Bartoldson et al. (2024, appendix F.2), a parametric law
``L̂(N, D, FID; θ)`` is fitted by minimising ``Σ_i Huber_δ(log L̂_i − log L_i)`` with
``δ = 1e-3``. The sum (not the mean) matters: it is what the papers minimise, and averaging
rescales the objective so that default optimiser tolerances stop even earlier.

``log L̂`` is computed with log-sum-exp of the law's terms (see the forms in
:mod:`advscale.laws.approach2` and :mod:`advscale.laws.approach3`), so it never overflows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

HUBER_DELTA = 1e-3
"""The papers' Huber threshold δ on log-space residuals."""


def lse(terms: np.ndarray) -> np.ndarray:
    """log-sum-exp over the last axis, stable for any finite or −inf terms."""
    m = np.max(terms, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.log(np.sum(np.exp(terms - m), axis=-1)) + m[..., 0]


def lse_softmax(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log-sum-exp over the last axis and the softmax weights (its gradient), in one pass."""
    m = np.max(terms, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    ex = np.exp(terms - m)
    s = np.sum(ex, axis=-1, keepdims=True)
    return np.log(s[..., 0]) + m[..., 0], ex / s


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Elementwise Huber loss: ``r²/2`` for ``|r| ≤ δ``, ``δ(|r| − δ/2)`` beyond."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_psi(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """The Huber loss's derivative ``clip(r, −δ, δ)``."""
    return np.clip(r, -delta, delta)


@dataclass
class Design:
    """The observations a law is fitted to, as arrays of length n.

    ``n``: parameters N; ``d``: training samples seen D; ``fid``: FID of the synthetic data
    (0 for real or ideal data); ``y``: the fitted quantity (a loss, or an error rate 1 − acc),
    strictly positive; ``run``: integer run index of each point (for the bootstrap).
    """

    n: np.ndarray
    d: np.ndarray
    fid: np.ndarray
    y: np.ndarray
    run: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def __post_init__(self) -> None:
        self.n = np.asarray(self.n, dtype=float)
        self.d = np.asarray(self.d, dtype=float)
        self.fid = np.asarray(self.fid, dtype=float)
        self.y = np.asarray(self.y, dtype=float)
        if self.run.size == 0:
            self.run = np.arange(self.n.size)
        self.log_n = np.log(self.n)
        self.log_d = np.log(self.d)
        self.u = np.log1p(self.fid)  # log(1 + 1/Quality), Quality = 1/FID
        with np.errstate(divide="ignore"):
            self.log_fid = np.where(self.fid > 0, np.log(np.where(self.fid > 0, self.fid, 1)),
                                    -np.inf)
        self.log_y = np.log(self.y)

    def __len__(self) -> int:
        return int(self.n.size)

    def take(self, idx: np.ndarray) -> Design:
        """The rows ``idx`` (repeats allowed: a bootstrap sample)."""
        return Design(self.n[idx], self.d[idx], self.fid[idx], self.y[idx], self.run[idx])



class Form(Protocol):
    """A parametric law in an unconstrained-ish internal parametrisation ``θ``."""

    name: str
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray

    def log_predict(self, theta: np.ndarray, x: Design) -> np.ndarray:
        """``log L̂`` for parameter sets ``theta`` (K, p) at every row of ``x``: (K, n)."""

    def log_predict_jac(self, theta: np.ndarray, x: Design) -> tuple[np.ndarray, np.ndarray]:
        """``log L̂`` (K, n) and its Jacobian with respect to θ (K, n, p)."""


@dataclass
class Problem:
    """The summed Huber objective of ``form`` on ``x``, over the free entries of θ.

    Entries of θ not in ``free`` stay at ``base``'s values (the paper's two-stage procedure
    fixes some parameters while fitting the others). Optional ``weights`` multiply each row's
    Huber loss: shape (n,), or (K, n) — one weight vector per parameter set in batched calls,
    which is how K bootstrap replicates (weights = how often each row was drawn) are refitted
    at once.
    """

    form: Form
    x: Design
    base: np.ndarray
    free: np.ndarray
    delta: float = HUBER_DELTA
    weights: np.ndarray | None = None
    _cache: tuple | None = field(default=None, repr=False, compare=False)

    @classmethod
    def all_free(cls, form: Form, x: Design, delta: float = HUBER_DELTA) -> Problem:
        p = len(form.names)
        return cls(form, x, np.zeros(p), np.arange(p), delta)

    def subset(self, mask: np.ndarray) -> Problem:
        """The problem restricted to the selected parameter sets' weight vectors."""
        w = self.weights
        if w is not None and w.ndim == 2:
            w = w[mask]
        return Problem(self.form, self.x, self.base, self.free, self.delta, w)

    def full(self, z: np.ndarray) -> np.ndarray:
        """Free parameters ``z`` (..., q) to full θ (..., p)."""
        z = np.asarray(z, dtype=float)
        theta = np.broadcast_to(self.base, z.shape[:-1] + self.base.shape).copy()
        theta[..., self.free] = z
        return theta

    def free_of(self, theta: np.ndarray) -> np.ndarray:
        """The free entries of full θ (..., p): (..., q)."""
        return np.asarray(theta, dtype=float)[..., self.free]

    @property
    def lower(self) -> np.ndarray:
        return self.form.lower[self.free]

    @property
    def upper(self) -> np.ndarray:
        return self.form.upper[self.free]

    # -- batched (K starts at once) -------------------------------------------------------
    def residuals_batch(self, z: np.ndarray) -> np.ndarray:
        """Log residuals (K, n) for free parameter sets ``z`` (K, q)."""
        return self.form.log_predict(self.full(z), self.x) - self.x.log_y

    def residuals_jac_batch(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lp, jac = self.form.log_predict_jac(self.full(z), self.x)
        return lp - self.x.log_y, jac[..., self.free]

    def objective_batch(self, z: np.ndarray) -> np.ndarray:
        """Summed Huber loss (K,) of each parameter set; non-finite values become +inf."""
        with np.errstate(all="ignore"):
            h = huber(self.residuals_batch(z), self.delta)
            f = (h if self.weights is None else h * self.weights).sum(axis=-1)
        return np.where(np.isfinite(f), f, np.inf)

    # -- single parameter vector (for scipy) ----------------------------------------------
    def _single(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals and Jacobian at one ``z``, cached (scipy asks for them separately)."""
        z = np.asarray(z, dtype=float)
        key = z.tobytes()
        if self._cache is None or self._cache[0] != key:
            with np.errstate(all="ignore"):
                r, jac = self.residuals_jac_batch(z[None])
            self._cache = (key, r[0], jac[0])
        return self._cache[1], self._cache[2]

    def residuals(self, z: np.ndarray) -> np.ndarray:
        return self._single(z)[0]

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        return self._single(z)[1]

    def objective(self, z: np.ndarray) -> float:
        return float(self.objective_batch(np.asarray(z)[None])[0])

    def objective_grad(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """The summed Huber loss and its analytic gradient ``Σ ψ(r_i) ∂r_i/∂z``."""
        r, jac = self._single(z)
        w = 1.0 if self.weights is None else self.weights
        with np.errstate(all="ignore"):
            f = float((huber(r, self.delta) * w).sum())
            g = (huber_psi(r, self.delta) * w) @ jac
        if not np.isfinite(f) or not np.all(np.isfinite(g)):
            return float("inf"), np.zeros_like(np.asarray(z, dtype=float))
        return f, g
