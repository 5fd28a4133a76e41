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


def draws(fit_record: dict[str, Any], figure: str) -> bool:
    """Whether the report draws ``fit_record`` on ``figure`` (a name of
    :data:`~advscale.laws.approach.FIGURES`): its approach declares the figure
    (:attr:`~advscale.laws.approach.Approach.figures`) and accepts this record
    (:meth:`~advscale.laws.approach.Approach.draws`)."""
    appr = record_approach(fit_record)
    return appr is not None and appr.draws(figure, fit_record)


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


def quality_laws(fit_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The laws the quality panels draw: the first law of each approach that draws them
    (Approach 3; Approach 2 fitted across qualities), in the order given, each only if it
    loads as a law of (N, D, FID)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for rec in fit_records:
        appr = record_approach(rec)
        if appr is None or appr.name in seen or not draws(rec, "quality") \
                or loss_function(rec) is None:
            continue
        seen.add(appr.name)
        out.append(rec)
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
