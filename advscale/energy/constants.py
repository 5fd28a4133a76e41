"""The assumed constants of energy accounting, each with its value, unit and source.

Measured figures come from counters; everything here is an *assumption* and every record that
uses one names it (see :func:`advscale.energy.report.energy_payload`). Defaults are the values
Debenedetti et al. (2024, section 5.2) used, so advscale's figures compare with theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

from advscale.core.options import option
from advscale.errors import AdvscaleError


@dataclass(frozen=True)
class Assumption:
    """An assumed constant: its value, its unit, and where it comes from."""

    name: str
    value: float
    unit: str
    source: str


PUE = Assumption(
    "pue", 1.58, "facility kWh per IT kWh",
    "Uptime Institute Global Data Center Survey 2018: global average PUE 1.58 "
    "(used by Debenedetti et al. 2024, sec. 5.2)",
)
USD_PER_KWH = Assumption(
    "usd_per_kwh", 0.12, "USD per kWh",
    "U.S. average electricity rate used by Debenedetti et al. 2024, sec. 5.2",
)
GCO2_PER_KWH = Assumption(
    "gco2_per_kwh", 566.3, "g CO2-eq per kWh",
    "ML CO2 Impact calculator (Lacoste et al. 2019) for Google Cloud Platform us-central1, "
    "as used by Debenedetti et al. 2024, sec. 5.2",
)
CPU_W_PER_CORE = Assumption(
    "cpu_w_per_core", 10.0, "W per busy core",
    "advscale's round assumption for CPU power when no RAPL counter is readable: server CPUs "
    "draw about 5-15 W per core at load (package TDP / cores); set yours with --cpu-w-per-core",
)
SAMPLE_INTERVAL_S = 1.0
"""Default power-sampling interval, as ``nvidia-smi -l 1`` in Debenedetti et al."""


@dataclass(frozen=True)
class EnergyConstants:
    """The constants one energy figure is converted with (defaults: the papers' values)."""

    pue: float = option(PUE.value, help="Power usage effectiveness (Uptime Institute 2018).",
                        unit=PUE.unit)
    usd_per_kwh: float = option(USD_PER_KWH.value, help="Electricity price.",
                                unit=USD_PER_KWH.unit)
    gco2_per_kwh: float = option(GCO2_PER_KWH.value, help="Carbon intensity (ML CO2 Impact, "
                                 "GCP us-central1).", unit=GCO2_PER_KWH.unit)
    cpu_w_per_core: float = option(CPU_W_PER_CORE.value, help="Assumed power per busy core "
                                   "when RAPL is not readable.", unit=CPU_W_PER_CORE.unit)

    def __post_init__(self) -> None:
        if not self.pue >= 1.0:
            raise AdvscaleError(f"PUE {self.pue} must be >= 1 (facility energy >= IT energy)")
        for name in ("usd_per_kwh", "gco2_per_kwh", "cpu_w_per_core"):
            if not getattr(self, name) >= 0:
                raise AdvscaleError(f"{name} {getattr(self, name)} must be >= 0")

    def sources(self) -> dict[str, str]:
        """``{name: "value unit (source)"}``: defaults cite their source, overrides say so."""
        out = {}
        for a in (PUE, USD_PER_KWH, GCO2_PER_KWH, CPU_W_PER_CORE):
            value = getattr(self, a.name)
            origin = a.source if value == a.value else "given on the command line"
            out[a.name] = f"{value:g} {a.unit} ({origin})"
        return out
