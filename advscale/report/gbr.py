"""The GBR study's figures (Debenedetti et al. 2024, Figures 1b and 1c) from a gbr ``fit``
record: predicted vs actual per run with the held-out runs marked (``predictions``), and the
feature importances with their range over split seeds (``importance_spread``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advscale.report.figures import Result, Skipped, _number, _plt, _save, predicted_vs_actual


def gbr_predictions(law: dict[str, Any], path: Path) -> Result:
    """The GBR's predicted vs actual target per run, held-out runs marked (Debenedetti et al.,
    Figure 1b), read from the fit record's ``predictions``."""
    title = "GBR predicted vs actual"
    preds = law.get("predictions") or []
    if not preds:
        return Skipped(title, "the gbr fit record carries no predictions (written before them)")
    points = [(float(p["actual"]), float(p["predicted"]), bool(p["held_out"])) for p in preds]
    return predicted_vs_actual(points, path, str(law.get("target", "target")), "gbr", title)


def feature_importances(law: dict[str, Any], path: Path) -> Result:
    """The GBR law's feature importances as bars, with their range over split seeds as error
    bars when the record has ``importance_spread`` (Debenedetti et al., Figure 1c)."""
    title = "Feature importances (GBR)"
    imp = law.get("feature_importances") or {}
    if not imp:
        return Skipped(title, "the gbr fit carries no feature_importances")
    spread = law.get("importance_spread") or {}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    names = sorted(imp, key=lambda k: imp[k])
    vals = [imp[k] for k in names]
    err = None
    if all(k in spread for k in names):
        err = np.array([[max(imp[k] - spread[k]["min"], 0.0) for k in names],
                        [max(spread[k]["max"] - imp[k], 0.0) for k in names]])
    ax.barh(names, vals, color="C0", xerr=err, capsize=3 if err is not None else 0)
    top = max(max(vals), max((spread[k]["max"] for k in names), default=0.0) if err is not None
              else 0.0)
    ax.set_xlim(0, max(top * 1.1, 1e-9))
    ax.set_xlabel("importance (sums to 1)")
    ax.set_ylabel("recipe feature")
    ax.set_title(title)
    st = law.get("stats") or {}
    r2 = _number(st.get("r2_test"))
    n_seeds = len((st.get("r2_test_seeds") or {}).get("values") or [])
    caption = (f"Which recipe features predict {law.get('target', 'the target')} in a gradient-"
               f"boosting regression over {st.get('n_runs', law.get('n_runs', '?'))} runs"
               + (f" (held-out R² {r2:.2f})" if r2 is not None else "")
               + (f"; bars span each importance's range over {n_seeds} split seeds"
                  if err is not None else "")
               + "; cf. Debenedetti et al., Figure 1c.")
    warns = law.get("feature_warnings") or []
    if warns:
        caption += " Warnings: " + "; ".join(warns) + "."
    return _save(fig, path, title, caption)
