"""Scaling laws for adversarial robustness: fitting them soundly and using them.

The papers' laws (Bartoldson et al. 2024, Approaches 1–3; Debenedetti et al. 2024, power laws
and a gradient-boosting predictor) are fitted to advscale's JSONL records and evaluated for
given model sizes N (parameters), data sizes D (training samples seen) and synthetic-data FIDs,
or for a training budget in FLOPs (plain FLOPs, never PFLOPs).

Modules (all free of torch, and light at import: SciPy's optimisers and scikit-learn are
imported only when a fit or a numeric optimum needs them):

* :mod:`~advscale.laws.approach` — the :class:`~advscale.laws.approach.Approach` base class and
  the registry (``register_approach``, ``get_approach``, ``list_approaches``): one class per
  approach, looked up by one name (``approach1``, ``approach2``, ``approach3``, ``power-law``,
  ``gbr``; ``--approach`` also takes ``1``, ``2``, ``3``).
* :mod:`~advscale.laws.data` — read ``train.eval``/``attack`` records, join runs, filters,
  the paper's exclusion rule.
* :mod:`~advscale.laws.protocol` — fitting protocols (``advscale``, ``bartoldson2024``: the
  authors' notebook), every choice of how records become a fitted law, in one switch.
* :mod:`~advscale.laws.objective` — log-space residuals, the summed Huber loss and its gradient.
* :mod:`~advscale.laws.optimize` — grid screening and tight polishing of multistart fits.
* :mod:`~advscale.laws.approach1`, :mod:`~advscale.laws.approach2`,
  :mod:`~advscale.laws.approach3`, :mod:`~advscale.laws.powerlaw`, :mod:`~advscale.laws.gbr` —
  each approach's mathematics and its registered class (:mod:`~advscale.laws.parametric`: what
  Approaches 2 and 3 share; :mod:`~advscale.laws.summary`: fit-record fields they share).
* :mod:`~advscale.laws.bootstrap` — bootstrap over whole runs, percentile intervals.
* :mod:`~advscale.laws.law` and :mod:`~advscale.laws.presets` — a fitted or published law,
  and what it predicts (:mod:`~advscale.laws.optimal`: compute-optimal N*, D*, Eq. 6).
* :mod:`~advscale.laws.fit` and :mod:`~advscale.laws.predict` — ``advscale fit`` and
  ``advscale predict`` as library calls that return records.
"""

from __future__ import annotations

# importing the approaches' modules registers them; then those named in $ADVSCALE_LAW_MODULES
from advscale.core.plugins import import_named_modules
from advscale.laws import approach1, approach2, approach3, gbr, powerlaw  # noqa: F401
from advscale.laws.approach import approach_options, get_approach, list_approaches

__all__ = ["APPROACHES", "ENV_MODULES", "get_approach", "list_approaches"]

ENV_MODULES = "ADVSCALE_LAW_MODULES"
"""Comma-separated modules imported (after the built-in approaches) for their
``register_approach`` calls."""

import_named_modules(ENV_MODULES)

APPROACHES = approach_options()
"""The ``--approach`` values of the registered approaches (``1``, ``2``, ``3``, ``gbr``,
``power-law``)."""
