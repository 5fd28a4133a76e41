"""The EDM sampler's settings (Karras et al. 2022, Algorithm 2 and Table 1), torch-free.

:class:`SamplerConfig` declares each setting once (``option`` fields: the command line's
``gen-synthetic`` options are generated from them); :mod:`advscale.synthetic.edm` runs it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from advscale.core.options import option

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
RHO = 7.0
SIGMA_DATA = 0.5


@dataclass(frozen=True)
class SamplerConfig:
    """Every setting of the EDM sampler (Karras et al. 2022, Algorithm 2).

    ``steps`` is N, the number of noise levels before 0 (so NFE = 2N - 1 for Heun).
    ``s_churn`` = 0 gives the deterministic sampler (the paper's CIFAR-10 setting).
    """

    steps: int = option(18, help="EDM sampler steps N (NFE = 2N-1). Paper: 5,6,7,10,20.")
    sigma_min: float = option(SIGMA_MIN, help="Smallest noise level σ.")
    sigma_max: float = option(SIGMA_MAX, help="Largest noise level σ.")
    rho: float = option(RHO, help="Schedule exponent ρ.")
    s_churn: float = option(0.0, flag="--churn", help="S_churn (0: deterministic).")
    s_min: float = option(0.0, help="S_min: churn only at sigma >= this.")
    s_max: float = option(math.inf, help="S_max: churn only at sigma <= this.")
    s_noise: float = option(1.0, help="S_noise: churn noise inflation.")
    solver: str = option("heun", help="heun or euler.")

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise ValueError(f"steps must be >= 2 (got {self.steps})")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError("need 0 < sigma_min < sigma_max")
        if self.rho <= 0:
            raise ValueError("rho must be positive")
        if self.s_churn < 0 or self.s_noise < 0:
            raise ValueError("s_churn and s_noise must be >= 0")
        if self.solver not in ("heun", "euler"):
            raise ValueError(f"solver {self.solver!r} must be 'heun' or 'euler'")

    @property
    def nfe(self) -> int:
        """Denoiser evaluations per image: 2·steps − 1 for Heun, steps for Euler."""
        return nfe_for(self.steps, self.solver)

    def as_attrs(self) -> dict[str, Any]:
        """Settings as plain values for file attributes and records (``s_max`` inf → null)."""
        d = asdict(self)
        d["s_max"] = None if math.isinf(self.s_max) else self.s_max
        d["nfe"] = self.nfe
        return d


def nfe_for(steps: int, solver: str = "heun") -> int:
    """Number of denoiser evaluations of an EDM sampler run of ``steps`` steps."""
    return 2 * steps - 1 if solver == "heun" else steps
