"""Debenedetti et al. (2024) §3.1: predict accuracy from the training recipe with gradient boosting.

Features per run (from its ``train.eval`` record): parameters N, whether synthetic data was
used, activation, loss (``trades``/``pgd-at``/``standard``), training PGD steps, and whether an
EMA of the weights was kept. scikit-learn's ``GradientBoostingRegressor`` (50 estimators, depth
5) is trained on a seeded 70:30 split; the fit reports the held-out R² and RMSE, the training
R², a 5-fold cross-validated R², and feature importances (one-hot columns summed back to their
feature). scikit-learn is imported only here, and only when a GBR fit is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from advscale.errors import AdvscaleError

FEATURES = ("params", "synthetic", "activation", "loss", "pgd_steps", "ema")


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
        },
    }
