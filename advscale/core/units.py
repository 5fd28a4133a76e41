"""Units and constants shared by every layer (no imports beyond the standard library).

FLOPs are SI FLOPs (plain floats, never PFLOPs); energy in kWh; times in seconds.
"""

from __future__ import annotations

PAPER_FLOPS_PER_PARAM_SAMPLE = 7822.0
"""Bartoldson et al. (ICML 2024, §3.2.2–3.2.3): training FLOPs ≈ 7822·N·D for TRADES-10
(their FLOPs convention: N parameters, D training samples seen)."""

PAPER_FLOPS_SOURCE = "Bartoldson et al. 2024 (FLOPs ~ 7822 N D)"
"""How records and reports cite :data:`PAPER_FLOPS_PER_PARAM_SAMPLE`."""

CIFAR_EPS = 8 / 255
"""The L∞ radius of the CIFAR-10 benchmarks (pixels in [0, 1])."""

JOULES_PER_KWH = 3.6e6
"""1 kWh in joules."""

PAPER_WRNS = ((10, 1), (16, 2), (16, 4), (28, 4), (28, 10), (34, 10), (34, 20), (40, 10),
              (46, 16), (58, 10), (70, 16), (82, 8), (94, 16), (106, 16))
"""The WRN (depth, width) sizes the papers train, registered by name in ``advscale.models``
(any other ``wrn-D-W`` works too); torch-free here so that ``predict`` can name them."""
