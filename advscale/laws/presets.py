"""The papers' published laws, with their published constants, usable without fitting.

* ``bartoldson2024-approach2``: appendix F.2.1, A = 6.69, B = 9.89, E = 0.48, α = 0.24,
  β = 0.23, ε = 0.16, ζ = −0.28 (fitted with the exclusion rule), FLOPs ≈ 7822·N·D, and the
  loss→accuracy regression of appendix F.2.2 (acc = 1.2575 − 0.7496·L).
* ``bartoldson2024-approach2-all``: the same fit without the exclusion rule (A = 7.6, B = 9.70,
  E = 0.49, α = 0.25, β = 0.23, ε = 0.14, ζ = −0.25).
* ``bartoldson2024-approach3``: appendix F.3.1, A = 6.0, B = 7000, E = 0.52, Q = 0.007,
  α = 0.24, β = 0.22, κ = 0.6, ε = 0.04.
* ``debenedetti2024``: §3.2, best AutoAttack accuracy (%) = 50.86 · FLOPs^0.01 and electricity
  cost / CO2 = 7.0e-6 · FLOPs^0.95. The paper does not state its FLOPs unit; only teraFLOPs
  (1e12) makes both laws plausible (≈ 59% at 1.7e18 FLOPs, the paper's accuracies; ≈ $146
  for their largest run, ~5e19 FLOPs), so the preset assumes it and converts to plain FLOPs:
  accuracy = 0.5086 · (F/1e12)^0.01. See docs/laws.md.

All published values are rounded to two significant figures, so quantities derived from them
(Table 3) carry that rounding; docs/laws.md lists where the paper's table and its own formula
and constants disagree.
"""

from __future__ import annotations

import copy
from typing import Any

from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.errors import AdvscaleError

PAPER_ACCURACY_MAP = {"slope": -0.7496, "intercept": 1.2575, "r2": 0.98,
                      "accuracy_field": "robust_acc",
                      "source": "Bartoldson et al. 2024, appendix F.2.2"}
"""acc = 1.2575 − 0.7496 · L (PGD-40 CW accuracy from the TRADES β=5 adversarial loss)."""

DEBENEDETTI_FLOPS_UNIT = 1e12
"""The FLOPs unit assumed for Debenedetti et al.'s constants (teraFLOPs; inferred)."""

_B = "Bartoldson, Diffenderfer, Parasyris, Kailkhura, ICML 2024"


def _debenedetti(c_paper: float, alpha: float, scale: float = 1.0) -> dict[str, float]:
    """Convert C·(F/1e12)^α in the paper's units to C'·F^α with plain FLOPs."""
    return {"C": c_paper * scale * DEBENEDETTI_FLOPS_UNIT ** -alpha, "alpha": alpha}


PRESETS: dict[str, dict[str, Any]] = {
    "bartoldson2024-approach2": {
        "approach": "2", "form": "approach2", "target": "adv_loss", "quantity": "loss",
        "params": {"A": 6.69, "B": 9.89, "E": 0.48, "alpha": 0.24, "beta": 0.23,
                   "epsilon": 0.16, "zeta": -0.28},
        "flops_per_param_sample": PAPER_FLOPS_PER_PARAM_SAMPLE,
        "loss_to_accuracy": PAPER_ACCURACY_MAP,
        "source": f"{_B}, Eq. 3 and appendix F.2.1 (fitted with the exclusion rule)",
    },
    "bartoldson2024-approach2-all": {
        "approach": "2", "form": "approach2", "target": "adv_loss", "quantity": "loss",
        "params": {"A": 7.6, "B": 9.70, "E": 0.49, "alpha": 0.25, "beta": 0.23,
                   "epsilon": 0.14, "zeta": -0.25},
        "flops_per_param_sample": PAPER_FLOPS_PER_PARAM_SAMPLE,
        "loss_to_accuracy": PAPER_ACCURACY_MAP,
        "source": f"{_B}, appendix F.2.1 (fitted without the exclusion rule)",
    },
    "bartoldson2024-approach3": {
        "approach": "3", "form": "approach3", "target": "adv_loss", "quantity": "loss",
        "params": {"A": 6.0, "B": 7000.0, "E": 0.52, "Q": 0.007, "alpha": 0.24,
                   "beta": 0.22, "kappa": 0.6, "epsilon": 0.04},
        "flops_per_param_sample": PAPER_FLOPS_PER_PARAM_SAMPLE,
        "loss_to_accuracy": PAPER_ACCURACY_MAP,
        "source": f"{_B}, Eq. 5 and appendix F.3.1",
    },
    "debenedetti2024": {
        "approach": "power-law", "form": "power-law", "target": "aa_acc",
        "quantity": "accuracy",
        "params": _debenedetti(50.86, 0.01, scale=0.01),
        "also": {
            "cost_usd": {**_debenedetti(7.0e-6, 0.95), "r2": 0.95},
            "co2_kg": {**_debenedetti(7.0e-6, 0.95), "r2": 0.95},
        },
        "stats": {"r2": 0.76},
        "published": {"C_percent": 50.86, "alpha": 0.01, "cost_C": 7.0e-6, "cost_alpha": 0.95,
                      "flops_unit_assumed": DEBENEDETTI_FLOPS_UNIT},
        "source": "Debenedetti, Wan, Andriushchenko, Sehwag, Bhardwaj, Kailkhura, ICLR 2024 "
                  "R2FM workshop, §3.2 (FLOPs unit not stated; teraFLOPs assumed; the paper "
                  "gives one (C, α) for both CO2 and electricity cost)",
    },
}


def preset(name: str) -> dict[str, Any]:
    """A copy of a published law's document (the same layout as a ``fit`` record's payload)."""
    if name not in PRESETS:
        raise AdvscaleError(
            f"unknown law {name!r}: give a fit JSON file, '-', or one of {', '.join(PRESETS)}"
        )
    doc = copy.deepcopy(PRESETS[name])
    doc["name"] = name
    # the papers' FIDs follow the published protocol (Inception, 50k vs 50k)
    doc.setdefault("fid_inputs", {"metrics": ["fid"], "comparable_to_published": True})
    return doc
