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
from advscale.laws.approach import Approach, FitData, Log, register_approach
from advscale.laws.data import Needs, Point, check_target_values, is_loss, warn_off_protocol

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
        n_estimators: int = 50, max_depth: int = 5, ids: list[str] | None = None
        ) -> dict[str, Any]:
    """Train the GBR on a seeded 70:30 split; held-out R²/RMSE and feature importances.

    ``predictions`` holds every run's ``{run_id, actual, predicted, held_out}`` under the seed's
    split (the paper's Figure 1b), ``importance_spread`` each feature's importance over
    :data:`SPLIT_SEEDS` splits (``{mean, std, min, max}``, Figure 1c's error bars), and
    ``warnings`` the design checks (:func:`design_warnings`).
    """
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.model_selection import cross_val_score, train_test_split

    y = np.asarray(y, dtype=float)
    if len(rows) < 10:
        raise AdvscaleError(f"gbr needs at least 10 runs; got {len(rows)}")
    x, cols, owners = design_matrix(rows)
    index = np.arange(len(rows))
    xtr, xte, ytr, yte, itr, ite = train_test_split(x, y, index, test_size=test_size,
                                                    random_state=seed)
    model = GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                      random_state=seed)
    model.fit(xtr, ytr)
    pred = model.predict(xte)
    imp = _by_feature(owners, model.feature_importances_)
    held = set(int(i) for i in ite)
    full = model.predict(x)
    ids = ids if ids is not None else [str(i) for i in range(len(rows))]
    predictions = [{"run_id": ids[i], "actual": float(y[i]), "predicted": float(full[i]),
                    "held_out": i in held} for i in range(len(rows))]
    folds = min(5, len(rows) // 2)
    cv = cross_val_score(
        GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                  random_state=seed), x, y, cv=folds, scoring="r2")
    seeds, spread = _split_r2(x, y, owners, seed, test_size, n_estimators, max_depth)
    return {
        "params": {"n_estimators": n_estimators, "max_depth": max_depth,
                   "test_size": test_size, "seed": seed},
        "columns": cols,
        "feature_importances": {k: imp[k] for k in FEATURES if k in imp},
        "importance_spread": spread,
        "predictions": predictions,
        "warnings": design_warnings(x, y, cols, owners, rows, imp, n_estimators, max_depth,
                                    seed),
        "stats": {
            "n_runs": len(rows), "n_train": int(len(ytr)), "n_test": int(len(yte)),
            "r2_test": float(r2_score(yte, pred)),
            "rmse_test": float(np.sqrt(mean_squared_error(yte, pred))),
            "r2_train": float(r2_score(ytr, model.predict(xtr))),
            "r2_cv_mean": float(np.mean(cv)), "r2_cv_std": float(np.std(cv)), "cv_folds": folds,
            "r2_test_seeds": seeds,
        },
    }


def _by_feature(owners: list[str], values: Any) -> dict[str, float]:
    """Column importances summed back to their feature (one-hot columns to one)."""
    imp: dict[str, float] = {}
    for owner, v in zip(owners, values, strict=True):
        imp[owner] = imp.get(owner, 0.0) + float(v)
    return imp


def _split_r2(x: np.ndarray, y: np.ndarray, owners: list[str], seed: int, test_size: float,
              n_estimators: int, max_depth: int
              ) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The held-out R² over :data:`SPLIT_SEEDS` seeded splits (values, mean, min, max) and each
    feature's importance over the same splits (mean, std, min, max)."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split

    values = []
    imps: dict[str, list[float]] = {}
    for s in range(seed, seed + SPLIT_SEEDS):
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=s)
        model = GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                          random_state=s).fit(xtr, ytr)
        values.append(float(r2_score(yte, model.predict(xte))))
        for k, v in _by_feature(owners, model.feature_importances_).items():
            imps.setdefault(k, []).append(v)
    spread = {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)),
                  "max": float(np.max(v))} for k, v in imps.items()}
    return ({"seeds": list(range(seed, seed + SPLIT_SEEDS)), "values": values,
             "mean": float(np.mean(values)), "min": float(np.min(values)),
             "max": float(np.max(values))},
            {k: spread[k] for k in FEATURES if k in spread})


DEGENERATE_SHARE = 0.8
"""A floor subgroup is 'degenerate' for a feature when this share of it has one value of it."""
IMPORTANCE_DROP = 0.5
"""... and the feature keeps less than this fraction of its importance without the subgroup."""


def design_warnings(x: np.ndarray, y: np.ndarray, cols: list[str], owners: list[str],
                    rows: list[dict[str, Any]], imp: dict[str, float], n_estimators: int,
                    max_depth: int, seed: int) -> list[str]:
    """Duplicate feature columns, and importances that come from a degenerate subgroup."""
    return (duplicate_features(x, cols, owners)
            + degenerate_importance(x, y, owners, rows, imp, n_estimators, max_depth, seed))


def duplicate_features(x: np.ndarray, cols: list[str], owners: list[str]) -> list[str]:
    """One line per pair of columns of different features that carry the same information
    (equal, or one the complement of the other over binary values): the GBR splits one effect
    between them arbitrarily."""
    out = []
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            if owners[i] == owners[j]:
                continue
            a, b = x[:, i], x[:, j]
            binary = set(np.unique(a)) <= {0.0, 1.0} and set(np.unique(b)) <= {0.0, 1.0}
            if np.array_equal(a, b) or (binary and np.array_equal(a, 1 - b)):
                if len(np.unique(a)) > 1:
                    out.append(f"features {owners[i]} and {owners[j]}: columns {cols[i]!r} and "
                               f"{cols[j]!r} are the same over all {len(a)} runs, so their "
                               f"importances split one effect")
    return out


def degenerate_importance(x: np.ndarray, y: np.ndarray, owners: list[str],
                          rows: list[dict[str, Any]], imp: dict[str, float], n_estimators: int,
                          max_depth: int, seed: int) -> list[str]:
    """A feature whose importance comes from runs stuck at the target's floor (e.g. one-step
    runs at ~0% AutoAttack accuracy): most of those share one value of the feature, and without
    them the feature keeps under :data:`IMPORTANCE_DROP` of its importance."""
    from sklearn.ensemble import GradientBoostingRegressor

    span = float(np.max(y) - np.min(y))
    floor = y <= np.min(y) + 0.02 * span
    n_floor = int(floor.sum())
    if span <= 0 or n_floor < 3 or len(y) - n_floor < 10:
        return []
    rest = GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                     random_state=seed).fit(x[~floor], y[~floor])
    without = _by_feature(owners, rest.feature_importances_)
    out = []
    for feat, v in imp.items():
        values = [repr(rows[i][feat]) for i in np.flatnonzero(floor)]
        top = max(set(values), key=values.count)
        share = values.count(top) / n_floor
        if v >= 0.2 and share >= DEGENERATE_SHARE and without.get(feat, 0.0) < IMPORTANCE_DROP * v:
            out.append(f"feature {feat}: its importance {v:.2f} comes from the {n_floor} runs at "
                       f"the target's floor (~{np.min(y):.3g}; {share:.0%} of them have "
                       f"{feat}={top}); without them it is {without.get(feat, 0.0):.2f}")
    return out


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
    needs = Needs(nd=False)
    figures = ("gbr",)

    def check_values(self, points: list[Point], target: str) -> None:
        """Any value (not a fit in log space); accuracies must still be fractions."""
        check_target_values(points, target, log_space=False)

    def quality_metric(self, info: dict[str, Any], log: Log) -> str | None:
        """The FIDs' metric when there is one; a warning when it is off the published
        protocol."""
        warn_off_protocol(info, log)
        return super().quality_metric(info, log)

    def refusal(self, operation: str) -> AdvscaleError:
        return AdvscaleError(DESCRIBES_ONLY)

    def fit(self, data: FitData) -> dict[str, Any]:
        if data.n_boot:
            data.log("gbr: --bootstrap is not used (a seeded 70:30 split and 5-fold CV instead)")
        runs = _last_per_run(data.points)
        rows = [recipe_features(p.rec) for p in runs]
        y = np.array([p.value for p in runs])
        res = fit(rows, y, seed=data.seed, ids=[p.run_id for p in runs])  # the module's fit
        warnings = feature_warnings([p.rec for p in runs], rows) + res.pop("warnings")
        for w in warnings:
            data.log(f"gbr: warning: {w}")
        st = res["stats"]
        sd = st["r2_test_seeds"]
        data.log(f"gbr: held-out R2 {st['r2_test']:.3f} on {st['n_test']} runs (seed "
                 f"{data.seed}); over {len(sd['values'])} split seeds mean {sd['mean']:.3f}, "
                 f"range [{sd['min']:.3f}, {sd['max']:.3f}]; importances " + ", ".join(
                     f"{k} {v:.2f}" for k, v in res["feature_importances"].items()))
        return {"form": self.name, "quantity": "loss" if is_loss(data.target) else "accuracy",
                "feature_warnings": warnings, **res}
