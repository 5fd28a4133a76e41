"""Adapters from ``fit`` records to what the report's figures draw."""

from __future__ import annotations

from typing import Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws.approach import Approach, approach_name, get_approach
from advscale.laws.law import Law
from advscale.report.figures import LossFn


def record_approach(fit_record: dict[str, Any]) -> Approach | None:
    """The approach of a ``fit`` record (from its ``form``, else ``approach``), or None."""
    for spelling in (fit_record.get("form"), fit_record.get("approach")):
        if approach_name(spelling) is not None:
            return get_approach(spelling)
    return None


def is_power_law(fit_record: dict[str, Any]) -> bool:
    """Whether a ``fit`` record is a Debenedetti et al. power law of FLOPs."""
    appr = record_approach(fit_record)
    return appr is not None and appr.name == "power-law"


def loss_function(fit_record: dict[str, Any]) -> LossFn | None:
    """``L(N, D, FID)`` of a fit record whose law predicts from N and D; None for others."""
    appr = record_approach(fit_record)
    if appr is None or not appr.supports("predict"):
        return None
    try:
        law = Law(fit_record)
    except AdvscaleError:
        return None

    def fn(n: np.ndarray, d: np.ndarray, fid: np.ndarray) -> np.ndarray:
        return np.asarray(law.value(np.asarray(n, float), np.asarray(d, float),
                                    np.asarray(fid, float)), dtype=float)

    return fn
