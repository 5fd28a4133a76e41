"""The backtest figure: a law fitted on some runs, predicting the others (``fit --holdout``).

Each held-out run at its training FLOPs with its relative prediction error (percent, predicted
minus actual over actual) and, when the law carries bootstrap samples, the 95% band of the
prediction as an error bar in the same units. The caption gives the record's summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advscale.laws.backtest import summary_line
from advscale.report.figures import Result, Skipped, _plt, _save, log_limits


def backtest_figure(law: dict[str, Any], path: Path) -> Result:
    """Relative errors of the held-out runs against their FLOPs (module doc)."""
    title = "Backtest"
    bt = law.get("backtest") or {}
    runs = [r for r in bt.get("runs") or [] if r.get("flops") and r.get("rel_error") is not None]
    if not runs:
        return Skipped(title, "the backtest's held-out runs carry no FLOPs")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    ax.set_xscale("log")
    x = np.array([r["flops"] for r in runs])
    y = np.array([100 * r["rel_error"] for r in runs])
    banded = [r for r in runs if r.get("band")]
    if banded:
        lo = np.array([100 * (r["band"][0] - r["actual"]) / r["actual"] for r in banded])
        hi = np.array([100 * (r["band"][1] - r["actual"]) / r["actual"] for r in banded])
        mid = np.array([100 * r["rel_error"] for r in banded])
        ax.errorbar([r["flops"] for r in banded], mid, yerr=[mid - lo, hi - mid], fmt="none",
                    ecolor="gray", alpha=0.6, label="95% band")
    ax.scatter(x, y, s=24, zorder=3, label="held-out run")
    ax.axhline(0.0, color="k", lw=1)
    ax.set_xlim(*log_limits(list(x)))
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel(f"relative error of the predicted {bt.get('quantity', 'value')} (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path, title, summary_line(bt) + ".")
