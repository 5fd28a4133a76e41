"""Scaling laws for adversarial robustness: fitting them soundly and using them.

The papers' laws (Bartoldson et al. 2024, Approaches 1–3; Debenedetti et al. 2024, power laws
and a gradient-boosting predictor) are fitted to advscale's JSONL records and evaluated for
given model sizes N (parameters), data sizes D (training samples seen) and synthetic-data FIDs,
or for a training budget in FLOPs (plain FLOPs, never PFLOPs).

Modules (all free of torch; scikit-learn is imported only by :mod:`advscale.laws.gbr`):

* :mod:`~advscale.laws.data` — read ``train.eval``/``attack`` records, join runs, filters,
  the paper's exclusion rule.
* :mod:`~advscale.laws.objective` — log-space residuals, the summed Huber loss and its gradient.
* :mod:`~advscale.laws.optimize` — grid screening and tight polishing of multistart fits.
* :mod:`~advscale.laws.approach1`, :mod:`~advscale.laws.approach2`,
  :mod:`~advscale.laws.approach3`, :mod:`~advscale.laws.powerlaw`, :mod:`~advscale.laws.gbr`.
* :mod:`~advscale.laws.bootstrap` — bootstrap over whole runs, percentile intervals.
* :mod:`~advscale.laws.law` and :mod:`~advscale.laws.presets` — a fitted or published law,
  and what it predicts (:mod:`~advscale.laws.optimal`: compute-optimal N*, D*, Eq. 6).
* :mod:`~advscale.laws.fit` — the whole ``advscale fit`` pipeline as one function.
"""

from __future__ import annotations

__all__ = ["APPROACHES"]

APPROACHES = ("1", "2", "3", "power-law", "gbr")
"""The fitting approaches ``advscale fit --approach`` accepts."""
