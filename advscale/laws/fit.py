"""``advscale fit`` as a library call: records in, one ``fit`` record payload out.

:func:`fit_law` reads ``train.eval``/``attack`` records, joins runs, applies ``--filter``
expressions and (for Approaches 2 and 3, by default) the paper's exclusion rule, fits the chosen
approach, bootstraps whole runs, and returns the payload documented in docs/formats.md
(``fit``). Human-readable progress goes to the ``log`` callback (stderr in the CLI).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import IO, Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws import APPROACHES, approach1, approach2, approach3, bootstrap, powerlaw
from advscale.laws.data import (
    Point,
    RecordSet,
    apply_filters,
    collect_points,
    fid_inputs,
    fid_warning,
    is_loss,
    paper_exclusion,
    read_runs,
)
from advscale.laws.filters import RecordFilter
from advscale.laws.objective import HUBER_DELTA, Design
from advscale.laws.optimal import PAPER_FLOPS_PER_PARAM_SAMPLE

DEFAULT_BOOTSTRAP = 1000

Log = Callable[[str], None]
Progress = Callable[[int, int], None]


def _nolog(msg: str) -> None:
    pass


def default_target(approach: str) -> str:
    """``adv_loss`` for Bartoldson et al.'s approaches, ``aa_acc`` for Debenedetti et al.'s."""
    return "aa_acc" if approach in ("power-law", "gbr") else "adv_loss"


def fit_law(
    sources: str | os.PathLike | Iterable[str | os.PathLike] = "-",
    *,
    approach: str,
    target: str | None = None,
    points: str | None = None,
    filters: Iterable[str] = (),
    exclusion: bool | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    attack: str = "aa-standard",
    also: Iterable[str] = (),
    full_grid: bool = True,
    delta: float = HUBER_DELTA,
    records: Iterable[dict[str, Any]] | None = None,
    stdin: IO[str] | None = None,
    log: Log | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit ``approach`` (``1``, ``2``, ``3``, ``power-law``, ``gbr``) to records.

    ``target``: ``adv_loss`` (default for 1–3), ``robust_acc``, ``clean_acc`` or ``aa_acc``
    (default for power-law and gbr). ``points``: ``final``/``best``/``all`` evaluation points
    per run (Approach 1 always uses all). ``exclusion``: the paper's rule (default on for
    Approaches 2 and 3 only). ``n_boot``: bootstrap replicates over runs (0 to skip).
    ``delta``: the Huber threshold on log residuals (the papers' 1e-3).
    """
    log = log or _nolog
    approach = str(approach)
    if approach not in APPROACHES:
        raise AdvscaleError(f"--approach {approach!r}: choose from {', '.join(APPROACHES)}")
    if n_boot < 0:
        raise AdvscaleError("--bootstrap must be >= 0")
    target = target or default_target(approach)
    filters = list(filters)
    for expr in filters:  # refuse a malformed --filter before reading anything
        RecordFilter(expr)
    if approach == "1":
        if points not in (None, "all"):
            log("approach 1 uses every evaluation point of each run (the training curves)")
        points = "all"
    points = points or "final"
    rs = read_runs(sources, stdin=stdin, records=records)
    log(f"read {rs.n_records} records: {len(rs.runs)} runs")
    pts = collect_points(rs, target, points, attack, need_fid=approach in ("2", "3"),
                         need_flops=approach in ("1", "power-law"), log=log)
    pts = apply_filters(pts, filters, log)
    if exclusion is None:
        exclusion = approach in ("2", "3")
    dropped: list[str] = []
    if exclusion:
        pts, dropped = paper_exclusion(pts, log)
    if not pts:
        raise AdvscaleError("no points left after filtering")
    common: dict[str, Any] = {
        "approach": approach,
        "target": target,
        "points": points,
        "filters": filters,
        "exclusion": {"rule": "drop runs with params < 1e8, samples_seen > 1e7 and fid < 10 "
                              "(Bartoldson et al. 2024, appendix F.2)",
                      "applied": bool(exclusion), "dropped_runs": dropped},
        "data": _data_summary(pts),
        "fid_inputs": fid_inputs(pts),
        "seed": seed,
    }
    if approach in ("2", "3", "gbr") and (warning := fid_warning(common["fid_inputs"])):
        log(warning)
    if approach in ("2", "3"):
        if not delta > 0:
            raise AdvscaleError(f"--huber-delta must be > 0, got {delta!r}")
        body = _fit_parametric(approach, pts, rs, target, n_boot, seed, full_grid, delta, log,
                               progress)
    elif approach == "1":
        body = _fit_approach1(pts, target, n_boot, seed, log, progress)
    elif approach == "power-law":
        body = _fit_powerlaw(pts, rs, target, list(also), n_boot, seed, log, progress)
    else:
        body = _fit_gbr(pts, target, seed, n_boot, log)
    st = body.get("stats", {})
    # flat headline numbers for tables and jq; the details stay in "stats" and "data"
    headline = {"n_points": common["data"]["n_points"], "n_runs": common["data"]["n_runs"],
                "r2": st.get("r2", st.get("r2_L", st.get("r2_test"))),
                "rmse": st.get("rmse", st.get("rmse_test"))}
    return {**common, **headline, **body}


# -- helpers ---------------------------------------------------------------------------------
def _data_summary(pts: list[Point]) -> dict[str, Any]:
    n = np.array([p.n for p in pts])
    d = np.array([p.d for p in pts])
    fids = sorted({round(p.fid, 6) for p in pts})
    return {"n_points": len(pts), "n_runs": len({p.run_id for p in pts}),
            "params_range": [float(n.min()), float(n.max())],
            "samples_range": [float(d.min()), float(d.max())],
            "distinct_params": int(np.unique(n).size), "distinct_samples": int(np.unique(d).size),
            "fids": fids[:100]}


def _run_index(pts: list[Point]) -> np.ndarray:
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(p.run_id, len(ids)) for p in pts])


def _flops_constant(pts: list[Point]) -> tuple[float, str]:
    ks = [p.flops / (p.n * p.d) for p in pts if p.flops]
    if ks:
        return float(np.median(ks)), "records (median train_flops / (params * samples_seen))"
    return PAPER_FLOPS_PER_PARAM_SAMPLE, "Bartoldson et al. 2024 (FLOPs ~ 7822 N D)"


def _accuracy_map(rs: RecordSet, pts: list[Point]) -> dict[str, Any] | None:
    """Regress robust_acc on adv_loss over each run's minimum-loss evaluation (appendix F.2.2)."""
    xs, ys = [], []
    for rid in dict.fromkeys(p.run_id for p in pts):
        best = None
        for t in rs.runs[rid].evals:
            lo, ac = t.rec.get("adv_loss"), t.rec.get("robust_acc")
            if isinstance(lo, int | float) and isinstance(ac, int | float) and (
                    best is None or lo < best[0]):
                best = (float(lo), float(ac))
        if best:
            xs.append(best[0])
            ys.append(best[1])
    if len(xs) < 3 or np.unique(xs).size < 2:
        return None
    x, y = np.array(xs), np.array(ys)
    slope, icpt = np.polyfit(x, y, 1)
    st = bootstrap.regression_stats(y, icpt + slope * x)
    return {"slope": float(slope), "intercept": float(icpt), "r2": st["r2"], "n": len(xs),
            "accuracy_field": "robust_acc",
            "source": "fitted from the records: each run's minimum-adv_loss evaluation"}


def _intervals(names: list[str], mat: np.ndarray) -> dict[str, list[float] | None]:
    return {k: bootstrap.percentile_interval(mat[:, i]) for i, k in enumerate(names)}


def _boot_block(names: list[str], res: bootstrap.BootstrapResult, extra: dict[str, np.ndarray]
                ) -> dict[str, Any]:
    mat = res.samples
    iv = _intervals(names, mat) if mat.size else {}
    for k, v in extra.items():
        iv[k] = bootstrap.percentile_interval(v)
    return {
        "b": int(mat.shape[0]), "ok": res.ok, "seed": res.seed, "level": bootstrap.LEVEL,
        "resampling": "runs (all points of a drawn run), with replacement",
        "intervals": iv, "names": names,
        "samples": [[None if not np.isfinite(v) else float(v) for v in row] for row in mat],
    }


def _oob(res: bootstrap.BootstrapResult) -> dict[str, float | None]:
    def med(a: np.ndarray) -> float | None:
        a = a[np.isfinite(a)]
        return float(np.median(a)) if a.size else None

    return {"oob_r2": med(res.oob_r2), "oob_rmse": med(res.oob_rmse),
            "oob_rmse_log": med(res.oob_rmse_log)}


def _at_bound(form, theta: np.ndarray, free: np.ndarray, public: tuple[str, ...]) -> list[str]:
    out = []
    for i in free:
        lo, hi = form.lower[i], form.upper[i]
        tol = 1e-3 * (hi - lo)  # within 0.1% of the box: effectively at the bound
        if theta[i] - lo <= tol or hi - theta[i] <= tol:
            out.append(public[i])
    return out


# -- Approaches 2 and 3 -----------------------------------------------------------------------
def _fit_parametric(approach: str, pts: list[Point], rs: RecordSet, target: str, n_boot: int,
                    seed: int, full_grid: bool, delta: float, log: Log,
                    progress: Progress | None) -> dict[str, Any]:
    loss_like = is_loss(target)
    y = np.array([p.value if loss_like else 1.0 - p.value for p in pts])
    bad = np.flatnonzero(~(y > 0))
    if bad.size:
        p = pts[int(bad[0])]
        what = target if loss_like else f"1 - {target}"
        raise AdvscaleError(f"{p.where}: {what} = {float(y[bad[0]])!r}; the law is fitted in "
                            f"log space and needs values > 0")
    x = Design(np.array([p.n for p in pts]), np.array([p.d for p in pts]),
               np.array([p.fid for p in pts]), y, _run_index(pts))
    mod = approach2 if approach == "2" else approach3
    form = mod.FORM
    mod.check_design(x)
    fixed: list[str] = []
    if approach == "2":
        res2 = approach2.fit(x, full_grid=full_grid, delta=delta, log=log)
        theta, objective, optimizer = res2.theta, res2.objective, res2.stages
        free = np.arange(5) if res2.fixed_quality else np.arange(7)
        if res2.fixed_quality:
            fixed = ["epsilon", "zeta"]
            log(f"one FID ({res2.base_fid:g}) in the data: epsilon and zeta fixed at 0; the law "
                f"holds at that FID only")

        def refit_batch(counts: np.ndarray) -> np.ndarray:
            return approach2.refit_batch(x, theta, counts, res2.fixed_quality, delta)
    else:
        res3 = approach3.fit(x, full_grid=full_grid, delta=delta, log=log)
        theta, objective, optimizer = res3.best.z.copy(), res3.best.objective, res3.summary()
        free = np.arange(len(form.names))

        def refit_batch(counts: np.ndarray) -> np.ndarray:
            return approach3.refit_batch(x, theta, counts, delta)

    public = mod.PUBLIC
    params = form.to_public(theta)
    at_bound = _at_bound(form, theta, free, public)
    if at_bound:
        log(f"warning: fit at a bound of {', '.join(at_bound)} (see 'at_bound')")
    yhat = np.exp(form.log_predict(theta[None], x)[0])
    stats = {"n_points": len(x), "n_runs": int(np.unique(x.run).size),
             **bootstrap.regression_stats(y, yhat)}
    derived = approach2.derived(params) if approach == "2" else approach3.derived(params)
    out: dict[str, Any] = {
        "form": form.name,
        "quantity": "loss" if loss_like else "error",
        "params": params,
        "derived": derived,
        "fixed": fixed,
        "objective": objective,
        "huber_delta": delta,
        "at_bound": at_bound,
        "optimizer": optimizer,
    }
    k, ksrc = _flops_constant(pts)
    out["flops_per_param_sample"] = k
    out["flops_per_param_sample_source"] = ksrc
    out["loss_to_accuracy"] = _accuracy_map(rs, pts) if target == "adv_loss" else None
    if n_boot > 0:
        log(f"bootstrap: {n_boot} replicates over {stats['n_runs']} runs (seed {seed})")

        def predict(th: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return np.exp(form.log_predict(th[None], x.take(rows))[0])

        res = bootstrap.run_bootstrap(x.run, y, None, predict, n_boot, seed, progress,
                                      refit_batch=refit_batch)
        pubs = np.array([list(form.to_public(r).values()) if np.all(np.isfinite(r))
                         else [np.nan] * len(public) for r in res.samples])
        extra = {}
        with np.errstate(all="ignore"):
            al, be = pubs[:, public.index("alpha")], pubs[:, public.index("beta")]
            extra["a"] = be / (al + be)
            extra["b"] = al / (al + be)
        boot = _boot_block(list(public), bootstrap.BootstrapResult(
            pubs, res.oob_r2, res.oob_rmse, res.oob_rmse_log, seed), extra)
        out["bootstrap"] = boot
        stats.update(_oob(res))
        covered = [k for k in public if k not in fixed]
        log("95% intervals: " + ", ".join(
            f"{k} [{boot['intervals'][k][0]:.4g}, {boot['intervals'][k][1]:.4g}]"
            for k in covered if boot["intervals"].get(k)))
    out["stats"] = stats
    log(f"approach {approach}: " + ", ".join(f"{k}={v:.4g}" for k, v in params.items())
        + f"; R2 {stats['r2']:.4f}, RMSE {stats['rmse']:.4g}")
    return out


# -- Approach 1 -------------------------------------------------------------------------------
def _fit_approach1(pts: list[Point], target: str, n_boot: int, seed: int, log: Log,
                   progress: Progress | None) -> dict[str, Any]:
    fids = sorted({p.fid for p in pts})
    if len(fids) > 1:
        raise AdvscaleError(
            f"approach 1 fits one dataset at a time (it does not model FID); the records have "
            f"FIDs {', '.join(f'{f:g}' for f in fids[:6])}: add e.g. --filter 'FID == {fids[0]:g}'"
        )
    lower = is_loss(target)
    curves = approach1.curves_from_points(pts, lower)
    res = approach1.fit_envelope(curves, lower)
    env = res["envelope"]
    out: dict[str, Any] = {
        "form": "approach1", "quantity": "loss" if lower else "accuracy",
        "params": res["params"], "derived": {"a": res["params"]["a"], "b": res["params"]["b"]},
        "stats": {**res["stats"], "n_points": len(pts), "n_runs": len(curves)},
        "envelope": {"flops": env.flops.tolist()[:: max(1, env.flops.size // 200)],
                     "value": env.value.tolist()[:: max(1, env.flops.size // 200)],
                     "n": env.n.tolist()[:: max(1, env.flops.size // 200)],
                     "d": env.d.tolist()[:: max(1, env.flops.size // 200)]},
    }
    names = list(res["params"])
    if n_boot > 0:
        run = np.array([c.run for c in curves])

        def refit(rows: np.ndarray) -> np.ndarray | None:
            sub = [approach1.Curve(i, curves[r].n, curves[r].flops, curves[r].d,
                                   curves[r].value) for i, r in enumerate(rows)]
            try:
                p = approach1.fit_envelope(sub, lower)["params"]
            except AdvscaleError:
                return None
            return np.array([p[k] for k in names])

        boot = bootstrap.run_bootstrap(run, np.zeros(len(run)), refit,
                                       lambda th, rows: np.zeros(len(rows)), n_boot, seed,
                                       progress)
        out["bootstrap"] = _boot_block(names, boot, {})
    log(f"approach 1: envelope of {len(curves)} runs, {res['stats']['envelope_points']} points; "
        f"N* ~ F^{res['params']['a']:.3f}, D* ~ F^{res['params']['b']:.3f}, "
        f"L* ~ F^{res['params']['s']:.3f}")
    return out


# -- power law --------------------------------------------------------------------------------
def _field_of_run(rs: RecordSet, p: Point, name: str) -> float:
    v = p.rec.get(name)
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    run = rs.runs.get(p.run_id)
    for t in reversed(run.others if run else []):
        v = t.rec.get(name)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return float("nan")


def _fit_powerlaw(pts: list[Point], rs: RecordSet, target: str, also: list[str], n_boot: int,
                  seed: int, log: Log, progress: Progress | None) -> dict[str, Any]:
    higher = not is_loss(target)
    flops = np.array([p.flops for p in pts], dtype=float)
    value = np.array([p.value for p in pts], dtype=float)
    extra = {name: np.array([_field_of_run(rs, p, name) for p in pts]) for name in also}
    res = powerlaw.fit(flops, value, extra, higher_is_better=higher)
    out: dict[str, Any] = {
        "form": "power-law", "quantity": "accuracy" if higher else "loss",
        "params": res["params"], "also": res["also"],
        "stats": {"r2": res["r2"], "bins": powerlaw.N_BINS, "bins_used": res["bins_used"],
                  "n_points": len(pts), "n_runs": len({p.run_id for p in pts})},
        "selected_runs": [pts[i].run_id for i in res["selected"]],
    }
    if n_boot > 0:
        # resample the per-bin best points (the envelope), not runs: a bootstrap over runs
        # drops the best run of a bin in a third of the replicates and biases a maximum down
        sel = res["selected"]
        fs, vs = flops[sel], value[sel]

        def refit(rows: np.ndarray) -> np.ndarray | None:
            if np.unique(fs[rows]).size < 2:
                return None
            law = approach1.loglog_fit(fs[rows], vs[rows])
            return np.array([law["k"], law["slope"]])

        boot = bootstrap.run_bootstrap(np.arange(sel.size), vs, refit,
                                       lambda th, rows: th[0] * fs[rows] ** th[1], n_boot,
                                       seed, progress)
        out["bootstrap"] = _boot_block(["C", "alpha"], boot, {})
        out["bootstrap"]["resampling"] = "the per-bin best points, with replacement"
    log(f"power law: {target} = {res['params']['C']:.4g} * FLOPs^{res['params']['alpha']:.4g} "
        f"(R2 {res['r2']:.3f}, {res['bins_used']} bins)")
    return out


# -- GBR --------------------------------------------------------------------------------------
def _fit_gbr(pts: list[Point], target: str, seed: int, n_boot: int, log: Log) -> dict[str, Any]:
    from advscale.laws import gbr

    if n_boot:
        log("gbr: --bootstrap is not used (a seeded 70:30 split and 5-fold CV instead)")
    by_run: dict[str, Point] = {}
    for p in pts:
        by_run[p.run_id] = p
    rows = [gbr.recipe_features(p.rec) for p in by_run.values()]
    y = np.array([p.value for p in by_run.values()])
    res = gbr.fit(rows, y, seed=seed)
    log(f"gbr: held-out R2 {res['stats']['r2_test']:.3f} on {res['stats']['n_test']} runs; "
        "importances " + ", ".join(f"{k} {v:.2f}" for k, v in res["feature_importances"].items()))
    return {"form": "gbr", "quantity": "accuracy" if not is_loss(target) else "loss", **res}
