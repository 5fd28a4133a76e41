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


def law_metric(fit_record: dict[str, Any]) -> str | None:
    """The quality metric a law's FIDs are in (:attr:`Law.fid_metric`: ``fid`` for the
    papers' presets), or None (also for a record that does not load as a law)."""
    try:
        return Law(fit_record).fid_metric
    except AdvscaleError:
        return None


def across_qualities(fit_record: dict[str, Any]) -> bool:
    """Whether a law models quality: Approach 3, or Approach 2 with ε and ζ fitted (not held
    at 0 because its data had one FID)."""
    appr = record_approach(fit_record)
    if appr is None or appr.name not in ("approach2", "approach3"):
        return False
    fixed = fit_record.get("fixed") or []
    return appr.name == "approach3" or not {"epsilon", "zeta"} & set(fixed)


def quality_laws(fit_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The laws the quality panels draw: the first Approach 3 law, then the first Approach 2
    law fitted across qualities (each only if it loads)."""
    out = []
    for form in ("approach3", "approach2"):
        for rec in fit_records:
            appr = record_approach(rec)
            if appr is not None and appr.name == form and across_qualities(rec) \
                    and loss_function(rec) is not None:
                out.append(rec)
                break
    return out


def law_kind(law: dict[str, Any]) -> str:
    """A law's approach and target: ``Approach 2 (adv_loss)``, ``power-law (aa_acc)``."""
    appr = law.get("approach")
    label = f"Approach {appr}" if str(appr) in ("1", "2", "3") else str(appr or "fitted")
    return f"{label} ({law.get('target', 'adv_loss')})"


def name_laws(laws: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Each law with its name as the user gave it: a preset's name (``debenedetti2024``), a
    fit file's path, else (a fit record) its kind (:func:`law_kind`); a repeated name gets
    ``#2``, ``#3``."""
    out: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for law in laws:
        given = law.get("name")
        base = given if isinstance(given, str) and given else law_kind(law)
        seen[base] = seen.get(base, 0) + 1
        out.append((base if seen[base] == 1 else f"{base} #{seen[base]}", law))
    return out
