"""Adapters from ``fit`` records to the callables the report's figures draw."""

from __future__ import annotations

from typing import Any

import numpy as np

from advscale.report.figures import LossFn


def loss_function(fit_record: dict[str, Any]) -> LossFn | None:
    """``L(N, D, FID)`` of an Approach 2/3 fit record; None for laws that don't predict it."""
    from advscale.errors import AdvscaleError
    from advscale.laws.law import Law

    if fit_record.get("form") not in ("approach2", "approach3"):
        return None
    try:
        law = Law(fit_record)
    except AdvscaleError:
        return None

    def fn(n: np.ndarray, d: np.ndarray, fid: np.ndarray) -> np.ndarray:
        return np.asarray(law.value(np.asarray(n, float), np.asarray(d, float),
                                    np.asarray(fid, float)), dtype=float)

    return fn
