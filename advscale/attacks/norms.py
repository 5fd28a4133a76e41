"""Threat models: the norm of the perturbation ball and its default radius and step rule.

Torch-free, so settings (``advscale.attacks.settings``, ``advscale.training.config``) can
validate and fill defaults without importing an attack.

* ``linf`` (the default; the papers' threat model): ‖δ‖∞ ≤ ε, ε = 8/255; PGD steps are the sign
  of the gradient times the step size (2/255 by default, Bartoldson et al. 2024; Gowal et al.).
* ``l2``: ‖δ‖₂ ≤ ε per image (ε = 0.5 on RobustBench's L2 leaderboard, ε = 128/255 in Gowal et
  al. 2020); PGD steps along the L2-normalised gradient, then projection onto the ball and
  [0, 1]. The default step is ``2.5 · ε / steps`` (Madry et al. 2018, the rule of the
  ``robustness`` library's ``--attack-lr``), ε/4 for the TRADES/PGD-AT 10-step attack.

Units: ε and step sizes are in [0, 1] pixel units (the L2 ball's radius over the whole image).
"""

from __future__ import annotations

import math

from advscale.errors import AdvscaleError

NORMS = ("linf", "l2")
"""Threat models, the default first."""

DEFAULT_EPS = {"linf": 8 / 255, "l2": 0.5}
"""The field's standard radius per norm (advscale's default stays L∞ 8/255)."""

LINF_STEP_SIZE = 2 / 255
"""The papers' L∞ PGD step (training and evaluation)."""

L2_STEP_FACTOR = 2.5
"""Madry et al. (2018): L2 PGD step = 2.5 · ε / steps."""

START_RULES = {"linf": "image-sha256-v1", "l2": "image-sha256-l2ball-v1"}
"""Names of the per-image random-start rules of the PGD evaluation, per norm
(:mod:`advscale.attacks.robustness`; hashed into ``advscale attack``'s settings keys)."""

MAX_L2_EPS = 64.0
"""Largest L2 radius accepted: above the diameter of a 3×32×32 [0, 1] image (≈ 55.4)."""


def check_norm(norm: str, field: str = "norm") -> str:
    """``norm`` lower-cased; AdvscaleError naming ``field`` when it is not one of :data:`NORMS`."""
    n = str(norm).strip().lower()
    if n not in NORMS:
        raise AdvscaleError(f"{field} {norm!r} is not a threat model; choose from "
                            f"{', '.join(NORMS)}", field=field)
    return n


def check_eps(eps: object, norm: str, field: str = "eps") -> float:
    """``eps`` as a float; AdvscaleError naming ``field`` outside the norm's range.

    L∞: (0, 1] (a fraction of the pixel range); L2: (0, 64].
    """
    top = 1.0 if norm == "linf" else MAX_L2_EPS
    ok = (isinstance(eps, int | float) and not isinstance(eps, bool) and math.isfinite(eps)
          and 0 < eps <= top)
    if not ok:
        hint = "pixel units, e.g. 8/255" if norm == "linf" else "L2 radius, e.g. 0.5"
        raise AdvscaleError(f"{field} must lie in (0, {top:g}] for {norm} ({hint}), got {eps}",
                            field=field)
    return float(eps)  # type: ignore[arg-type]


def default_step_size(norm: str, eps: float, steps: int) -> float:
    """The PGD step when none is given: 2/255 under L∞, ``2.5 · eps / steps`` under L2."""
    if norm == "linf":
        return LINF_STEP_SIZE
    return L2_STEP_FACTOR * float(eps) / max(int(steps), 1)
