"""A fit never ends in a nonsensical law: non-finite inputs and non-finite fits are one error.

A target value that is NaN or infinite, or so large that its square overflows a float (a loss of
1e308), is refused before fitting; a fit whose parameters or headline statistics (R², RMSE) come
out NaN or infinite is refused after it, naming the quantities at fault.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from advscale.errors import AdvscaleError

MAX_ABS = 1e150
"""Largest target magnitude a least-squares fit can take (its square stays a finite float)."""


def _bad(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and not math.isfinite(v)


def check_finite_points(pts: Iterable[Any], target: str) -> None:
    """Refuse target values that are NaN, infinite, or larger in magnitude than MAX_ABS."""
    pts = list(pts)
    bad = [p for p in pts if _bad(p.value) or abs(p.value) > MAX_ABS]
    if bad:
        raise AdvscaleError(
            f"{len(bad)} of {len(pts)} {target} values are not finite or too large to fit (e.g. "
            f"{bad[0].value:g} at {bad[0].where}); a loss or accuracy must be a finite number "
            f"below {MAX_ABS:g}", field="target")


def _numbers(prefix: str, value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _numbers(f"{prefix}.{k}" if prefix else str(k), v)
    else:
        yield prefix, value


def check_finite_fit(body: Mapping[str, Any]) -> None:
    """Refuse a fit whose R², RMSE, parameters or statistics are NaN or infinite."""
    parts = {k: body.get(k) for k in ("r2", "rmse", "params", "stats")}
    bad = [(name, v) for name, v in _numbers("", parts) if _bad(v)]
    if bad:
        shown = ", ".join(f"{n} {v}" for n, v in bad[:4])
        raise AdvscaleError(f"the fit did not converge to finite values ({shown}); check the "
                            "records for extreme values or fit fewer parameters")
