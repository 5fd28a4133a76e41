"""A new scaling law in one file (the test of CONTRIBUTING.md's "Add a law"): a flat law.

Importing this module registers ``median``: the fitted quantity is one constant ``c``, the
median of the points' values (``--trim`` of them dropped at each end first), whatever N, D and
FID. It owns its option (``trim``, shown in ``advscale fit --help`` in its own panel and
recorded in the fit's provenance) and names its report figures (``law_of_nd``: the law's fit,
predicted vs actual). ``advscale`` finds it when this module is named in
``$ADVSCALE_LAW_MODULES`` (and importable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from advscale.core.options import option
from advscale.errors import AdvscaleError
from advscale.laws.approach import Approach, FitData, register_approach


@dataclass
class MedianOptions:
    """The median law's own fit options."""

    trim: float = option(0.0, help="Fraction of the values dropped at each end before the "
                         "median.", panel="Median law (--approach median)")


@register_approach
class Median(Approach):
    """``L(N, D, FID) = c``: the (trimmed) median of the fitted values."""

    name = "median"
    option = "median"
    params = ("c",)
    inputs = "ndf"
    Options = MedianOptions
    figures = ("law_of_nd",)

    def fit(self, data: FitData) -> dict[str, Any]:
        trim = data.options.trim
        if not 0 <= trim < 0.5:
            raise AdvscaleError(f"trim must lie in [0, 0.5), got {trim}", field="trim")
        values = np.sort([p.value for p in data.points])
        cut = int(trim * values.size)
        c = float(np.median(values[cut:values.size - cut]))
        resid = values - c
        r2 = 1.0 - float(np.sum(resid ** 2)) / float(np.sum((values - values.mean()) ** 2))
        data.log(f"median law: c={c:.4g} (trim {trim:g})")
        return {"form": self.name, "quantity": "loss", "params": {"c": c},
                "stats": {"r2": r2, "rmse": float(np.sqrt(np.mean(resid ** 2)))}}

    def predict(self, params: dict, n, d, fid=0.0) -> np.ndarray:
        return np.full(np.broadcast(np.asarray(n), np.asarray(d)).shape, params["c"])
