"""Debenedetti et al. (2024) §3.1: predict accuracy from the training recipe with gradient boosting.

Features per run (from its ``train.eval`` record): parameters N, whether synthetic data was
used, activation, loss (``trades``/``pgd-at``/``standard``), training PGD steps, and whether an
EMA of the weights was kept. scikit-learn's ``GradientBoostingRegressor`` (50 estimators, depth
5) is trained on a seeded 70:30 split; the fit reports the held-out R² and RMSE, the training
R², the held-out R² over :data:`SPLIT_SEEDS` split seeds (mean and range: one split can swing
it widely), a 5-fold cross-validated R², and feature importances (one-hot columns summed back
to their feature). A feature missing from some runs' records (filled with a constant:
``unknown``, no EMA) or constant over all runs (its importance is 0 by construction) is named
in ``feature_warnings`` and on stderr. scikit-learn is imported only here, and only when a GBR
fit is asked for.

:class:`GBR` is the registered approach (``gbr``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws.approach import Approach, FitData, register_approach
from advscale.laws.data import Point, is_loss

FEATURES = ("params", "synthetic", "activation", "loss", "pgd_steps", "ema")
SPLIT_SEEDS = 10
"""How many 70:30 splits (seeds ``seed``, ``seed + 1``, ...) the held-out R² is reported over."""

_SOURCE_FIELDS = {"activation": ("activation",), "loss": ("loss",), "ema": ("ema_decay",),
                  "synthetic": ("fid", "data")}
_FILL = {"activation": "'unknown'", "loss": "'unknown'", "ema": "no EMA",
         "synthetic": "no synthetic data"}

DESCRIBES_ONLY = ("gbr fits describe which recipe features matter; they are not a law to predict "
                  "with (use approach 2/3 or a power law)")


def recipe_features(rec: dict[str, Any]) -> dict[str, Any]:
    """The six recipe features of a ``train.eval``-like record."""
    data = rec.get("data") or []
    synthetic = rec.get("fid") is not None or any(
        isinstance(s, dict) and (s.get("fid") is not None or s.get("source") == "synthetic")
        for s in data
    )
    ema = rec.get("ema_decay")
    return {
        "params": rec.get("params"),
        "synthetic": bool(synthetic),
        "activation": str(rec.get("activation") or "unknown"),
        "loss": str(rec.get("loss") or "unknown"),
        "pgd_steps": rec.get("pgd_steps") if rec.get("loss") != "standard" else 0,
        "ema": bool(ema) and float(ema) > 0,
    }


def feature_warnings(recs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """One line per feature missing from some runs (filled with a constant) or constant."""
    out = []
    n = len(rows)
    for feat in FEATURES:
        fields = _SOURCE_FIELDS.get(feat)
        if fields:
            missing = sum(all(r.get(k) is None for k in fields) for r in recs)
            if missing:
                out.append(f"feature {feat}: missing in {missing} of {n} runs (filled with "
                           f"{_FILL[feat]})")
        values = {repr(r[feat]) for r in rows}
        if len(values) == 1:
            out.append(f"feature {feat}: constant ({values.pop()}) over all {n} runs: it "
                       f"cannot explain anything (importance 0)")
    return out


def design_matrix(rows: list[dict[str, Any]]) -> tuple[np.ndarray, list[str], list[str]]:
    """Numeric matrix (one-hot activation and loss), column names, and each column's feature."""
    acts = sorted({r["activation"] for r in rows})
    losses = sorted({r["loss"] for r in rows})
    cols, owners, mat = [], [], []
    cols += ["params", "synthetic", "pgd_steps", "ema"]
    owners += ["params", "synthetic", "pgd_steps", "ema"]
    cols += [f"activation={a}" for a in acts]
    owners += ["activation"] * len(acts)
    cols += [f"loss={s}" for s in losses]
    owners += ["loss"] * len(losses)
    for r in rows:
        if r["params"] is None or r["pgd_steps"] is None:
            raise AdvscaleError("gbr: every run needs 'params' and 'pgd_steps'")
        mat.append([float(r["params"]), float(r["synthetic"]), float(r["pgd_steps"]),
                    float(r["ema"])] + [float(r["activation"] == a) for a in acts]
                   + [float(r["loss"] == s) for s in losses])
    return np.array(mat), cols, owners


def fit(rows: list[dict[str, Any]], y: np.ndarray, seed: int = 0, test_size: float = 0.3,
        n_estimators: int = 50, max_depth: int = 5) -> dict[str, Any]:
    """Train the GBR on a seeded 70:30 split; held-out R²/RMSE and feature importances."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.model_selection import cross_val_score, train_test_split

    y = np.asarray(y, dtype=float)
    if len(rows) < 10:
        raise AdvscaleError(f"gbr needs at least 10 runs; got {len(rows)}")
    x, cols, owners = design_matrix(rows)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed)
    model = GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                      random_state=seed)
    model.fit(xtr, ytr)
    pred = model.predict(xte)
    imp: dict[str, float] = {}
    for owner, v in zip(owners, model.feature_importances_, strict=True):
        imp[owner] = imp.get(owner, 0.0) + float(v)
    folds = min(5, len(rows) // 2)
    cv = cross_val_score(
        GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                  random_state=seed), x, y, cv=folds, scoring="r2")
    seeds = _split_r2(x, y, seed, test_size, n_estimators, max_depth)
    return {
        "params": {"n_estimators": n_estimators, "max_depth": max_depth,
                   "test_size": test_size, "seed": seed},
        "columns": cols,
        "feature_importances": {k: imp[k] for k in FEATURES if k in imp},
        "stats": {
            "n_runs": len(rows), "n_train": int(len(ytr)), "n_test": int(len(yte)),
            "r2_test": float(r2_score(yte, pred)),
            "rmse_test": float(np.sqrt(mean_squared_error(yte, pred))),
            "r2_train": float(r2_score(ytr, model.predict(xtr))),
            "r2_cv_mean": float(np.mean(cv)), "r2_cv_std": float(np.std(cv)), "cv_folds": folds,
            "r2_test_seeds": seeds,
        },
    }


def _split_r2(x: np.ndarray, y: np.ndarray, seed: int, test_size: float, n_estimators: int,
              max_depth: int) -> dict[str, Any]:
    """The held-out R² over :data:`SPLIT_SEEDS` seeded splits: values, mean, min, max."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split

    values = []
    for s in range(seed, seed + SPLIT_SEEDS):
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=s)
        model = GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                          random_state=s).fit(xtr, ytr)
        values.append(float(r2_score(yte, model.predict(xte))))
    return {"seeds": list(range(seed, seed + SPLIT_SEEDS)), "values": values,
            "mean": float(np.mean(values)), "min": float(np.min(values)),
            "max": float(np.max(values))}


def _last_per_run(pts: list[Point]) -> list[Point]:
    by_run: dict[str, Point] = {}
    for p in pts:
        by_run[p.run_id] = p
    return list(by_run.values())


@register_approach
class GBR(Approach):
    """Debenedetti et al. §3.1: which recipe features predict accuracy; not a law to query."""

    name = "gbr"
    option = "gbr"
    predictive = False
    default_target = "aa_acc"
    warns_fid = True
    needs_nd = False
    log_space = False

    def refusal(self, operation: str) -> AdvscaleError:
        return AdvscaleError(DESCRIBES_ONLY)

    def fit(self, data: FitData) -> dict[str, Any]:
        if data.n_boot:
            data.log("gbr: --bootstrap is not used (a seeded 70:30 split and 5-fold CV instead)")
        runs = _last_per_run(data.points)
        rows = [recipe_features(p.rec) for p in runs]
        warnings = feature_warnings([p.rec for p in runs], rows)
        for w in warnings:
            data.log(f"gbr: warning: {w}")
        y = np.array([p.value for p in runs])
        res = fit(rows, y, seed=data.seed)  # the module's fit
        st = res["stats"]
        sd = st["r2_test_seeds"]
        data.log(f"gbr: held-out R2 {st['r2_test']:.3f} on {st['n_test']} runs (seed "
                 f"{data.seed}); over {len(sd['values'])} split seeds mean {sd['mean']:.3f}, "
                 f"range [{sd['min']:.3f}, {sd['max']:.3f}]; importances " + ", ".join(
                     f"{k} {v:.2f}" for k, v in res["feature_importances"].items()))
        return {"form": self.name, "quantity": "loss" if is_loss(data.target) else "accuracy",
                "feature_warnings": warnings, **res}
