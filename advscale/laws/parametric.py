"""What Approaches 2 and 3 share: a parametric law fitted by the summed Huber loss in log space.

:class:`ParametricApproach` is the fit pipeline; a subclass (Approach 2 or 3) gives its
``form`` (log-space law with bounds, :mod:`advscale.laws.objective`), its design check and its
:meth:`~ParametricApproach.search` (the papers' initialisation grids and stages). The pipeline:

1. the target as a positive quantity: the loss, or the error rate 1 − accuracy;
2. the search (grid screening, tight polish; :mod:`advscale.laws.optimize`);
3. parameters at a bound flagged, in-sample R²/RMSE;
4. a bootstrap over whole runs: every replicate refitted from the full-data optimum, with
   intervals for every parameter and Eq. 4's exponents a, b, and out-of-bag statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws import bootstrap, summary
from advscale.laws.approach import Approach, FitData, Log
from advscale.laws.data import (
    Needs,
    Point,
    check_target_values,
    is_loss,
    single_fid_metric,
    warn_off_protocol,
)
from advscale.laws.objective import Design, Form


@dataclass
class Search:
    """The result of an approach's search: full θ, the objective, and how to refit replicates.

    ``free``: indices of θ that were fitted (the rest held); ``fixed``: public names held at
    0; ``refit_batch(counts)`` refits K bootstrap replicates given their (K, n) row counts.
    """

    theta: np.ndarray
    objective: float
    optimizer: dict[str, Any]
    free: np.ndarray
    refit_batch: Callable[[np.ndarray], np.ndarray]
    fixed: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Further fields of the fit record (e.g. Approach 2's ``anchoring``)."""


def fitted_values(pts: list[Point], target: str) -> tuple[np.ndarray, str]:
    """The fitted quantity per point (the loss, or 1 − accuracy), all > 0, and its name."""
    loss_like = is_loss(target)
    y = np.array([p.value if loss_like else 1.0 - p.value for p in pts])
    bad = np.flatnonzero(~(y > 0))
    if bad.size:
        p = pts[int(bad[0])]
        what = target if loss_like else f"1 - {target}"
        raise AdvscaleError(f"{p.where}: {what} = {float(y[bad[0]])!r}; the law is fitted in "
                            f"log space and needs values > 0")
    return y, "loss" if loss_like else "error"


def design(pts: list[Point], y: np.ndarray) -> Design:
    """The observations as arrays: N, D, FID, the fitted quantity and the run of each point."""
    return Design(np.array([p.n for p in pts]), np.array([p.d for p in pts]),
                  np.array([p.fid for p in pts]), y, summary.run_index(pts))


class ParametricApproach(Approach):
    """Approach 2 or 3: ``form`` fitted to (N, D, FID) points; see the module docstring."""

    inputs = "ndf"
    needs = Needs(fid=True)
    default_exclusion = True
    figures = ("law_of_nd", "quality")
    form: ClassVar[Form]

    def check_values(self, points: list[Point], target: str) -> None:
        """An accuracy target is fitted as the error rate, in log space: it must be < 1."""
        check_target_values(points, target, as_error=True)

    def quality_metric(self, info: dict[str, Any], log: Log) -> str | None:
        """The one metric of the law's quality axis (a mix is refused: different scales),
        logged; a warning when it is off the published protocol."""
        metric = single_fid_metric(info, self.option)
        if metric is not None:
            log(f"approach {self.option}: the quality axis (FID) is {metric}")
        warn_off_protocol(info, log)
        return metric

    def check_design(self, x: Design) -> None:
        """Refuse data that cannot identify the law (a one-line AdvscaleError)."""

    def search(self, x: Design, data: FitData) -> Search:
        """Find the best θ for ``x`` (the approach's grid and stages)."""
        raise NotImplementedError

    def select(self, data: FitData) -> FitData:
        """The points this approach fits (all of them unless the protocol names datasets)."""
        return data

    def fit(self, data: FitData) -> dict[str, Any]:
        if not data.delta > 0:
            raise AdvscaleError(f"delta must be > 0, got {data.delta!r}", field="delta")
        given = len(data.points)
        data = self.select(data)
        y, quantity = fitted_values(data.points, data.target)
        x = design(data.points, y)
        self.check_design(x)
        found = self.search(x, data)
        params = self.form.to_public(found.theta)
        bound = summary.at_bound(self.form, found.theta, found.free, self.params)
        if bound:
            data.log(f"warning: fit at a bound of {', '.join(bound)} (see 'at_bound')")
        yhat = np.exp(self.form.log_predict(found.theta[None], x)[0])
        stats = {"n_points": len(x), "n_runs": int(np.unique(x.run).size),
                 **bootstrap.regression_stats(y, yhat)}
        k, ksrc = summary.flops_constant(data.points)
        out: dict[str, Any] = {
            "form": self.name, "quantity": quantity, "params": params,
            "derived": self.derived(params), "fixed": found.fixed,
            "objective": found.objective, "huber_delta": data.delta, "at_bound": bound,
            "optimizer": found.optimizer, "flops_per_param_sample": k,
            "flops_per_param_sample_source": ksrc,
            "loss_to_accuracy": self._accuracy_map(data),
            **found.extra,
        }
        if len(data.points) != given:  # the protocol named the datasets fitted
            out["data"] = summary.data_summary(data.points)
        if data.n_boot > 0:
            out["bootstrap"] = self._bootstrap(x, y, found, data, stats)
        out["stats"] = stats
        data.log(f"approach {self.option}: " + ", ".join(f"{k}={v:.4g}" for k, v in params.items())
                 + f"; R2 {stats['r2']:.4f}, RMSE {stats['rmse']:.4g}")
        return out

    @staticmethod
    def _accuracy_map(data: FitData) -> dict[str, Any] | None:
        if data.target != "adv_loss":
            return None
        proto = data.protocol
        return summary.accuracy_map(data.runs, data.points, proto.accuracy_runs,
                                    proto.base_dataset, data.log)

    def _bootstrap(self, x: Design, y: np.ndarray, found: Search, data: FitData,
                   stats: dict[str, Any]) -> dict[str, Any]:
        """Refit ``data.n_boot`` replicates over runs; add OOB statistics to ``stats``."""
        data.log(f"bootstrap: {data.n_boot} replicates over {stats['n_runs']} runs "
                 f"(seed {data.seed})")
        form, public = self.form, self.params

        def predict(th: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return np.exp(form.log_predict(th[None], x.take(rows))[0])

        res = bootstrap.run_bootstrap(x.run, y, None, predict, data.n_boot, data.seed,
                                      data.progress, refit_batch=found.refit_batch)
        pubs = np.array([list(form.to_public(r).values()) if np.all(np.isfinite(r))
                         else [np.nan] * len(public) for r in res.samples])
        with np.errstate(all="ignore"):
            al, be = pubs[:, public.index("alpha")], pubs[:, public.index("beta")]
            extra = {"a": be / (al + be), "b": al / (al + be)}
        boot = summary.boot_block(list(public), bootstrap.BootstrapResult(
            pubs, res.oob_r2, res.oob_rmse, res.oob_rmse_log, data.seed), extra)
        stats.update(summary.oob(res))
        covered = [k for k in public if k not in found.fixed]
        data.log("95% intervals: " + ", ".join(
            f"{k} [{boot['intervals'][k][0]:.4g}, {boot['intervals'][k][1]:.4g}]"
            for k in covered if boot["intervals"].get(k)))
        return boot
