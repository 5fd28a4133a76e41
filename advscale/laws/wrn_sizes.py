"""WideResNet sizes without torch: parameter counts in closed form and the WRNs nearest an N*.

advscale's WRN-D-W (:mod:`advscale.models.wrn`, pre-activation, 10 classes) has a 3×3 stem
(3 → 16 channels), three groups of ``(D − 4) / 6`` blocks with widths 16W, 32W, 64W, and a
final BN and linear layer. A block ``cin → cout`` holds BN(cin) (2·cin), conv3×3 (9·cin·cout),
BN(cout) (2·cout), conv3×3 (9·cout²) and, when the shape changes, a 1×1 projection
(cin·cout). So :func:`wrn_params` is exact (WRN-28-10: 36,479,194; a test checks it against
the built model) and ``predict --flops`` can name models without importing torch.

FLOPs per training sample are the law's ``k · N`` (Bartoldson et al.'s F = k·N·D, k = 7822 for
TRADES-10), the convention in which N* is defined.
"""

from __future__ import annotations

import math
from typing import Any

from advscale.core.units import PAPER_WRNS

DEPTHS = tuple(range(16, 131, 6))
"""WRN depths the family search tries (6k + 4, 16 to 130)."""
WIDTHS = tuple(range(1, 25))
"""WRN widths the family search tries (1 to 24)."""


def wrn_params(depth: int, width: int, num_classes: int = 10, in_chans: int = 3) -> int:
    """Trainable parameters of advscale's WRN-``depth``-``width`` (module doc), a count."""
    if depth < 10 or (depth - 4) % 6 or width < 1:
        raise ValueError(f"WRN-{depth}-{width}: depth must be 6k + 4 >= 10 and width >= 1")
    n = (depth - 4) // 6
    chans = [16, 16 * width, 32 * width, 64 * width]
    total = 9 * in_chans * chans[0]
    for g in range(3):
        for i in range(n):
            cin, cout = (chans[g] if i == 0 else chans[g + 1]), chans[g + 1]
            total += 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout
            if cin != cout or (i == 0 and g > 0):
                total += cin * cout
    return total + 2 * chans[3] + chans[3] * num_classes + num_classes


def wrn_row(depth: int, width: int, n_opt: float | None, k: float, registered: bool
            ) -> dict[str, Any]:
    """One model: name, N, training FLOPs per sample (k·N), N / N*, registered or not."""
    n = wrn_params(depth, width)
    return {"name": f"wrn-{depth}-{width}", "params": n, "flops_per_sample": k * n,
            "n_over_n_opt": (n / n_opt) if n_opt else None, "registered": registered}


def nearest_wrns(n_opt: float, k: float, registered: int = 2, family: int = 3
                 ) -> list[dict[str, Any]]:
    """The registered WRNs just below and above ``n_opt`` (``registered`` nearest in ln N),
    then the ``family`` nearest WRN-D-W over :data:`DEPTHS` × :data:`WIDTHS` not registered."""
    if not (n_opt and math.isfinite(n_opt) and n_opt > 0):
        return []
    paper = set(PAPER_WRNS)

    def dist(dw: tuple[int, int]) -> float:
        return abs(math.log(wrn_params(*dw) / n_opt))

    named = sorted(PAPER_WRNS, key=dist)[:registered]
    grid = [(d, w) for d in DEPTHS for w in WIDTHS if (d, w) not in paper]
    found = sorted(grid, key=dist)[:family]
    return ([wrn_row(d, w, n_opt, k, True) for d, w in named]
            + [wrn_row(d, w, n_opt, k, False) for d, w in found])
