"""What a run costs in energy, money and CO2: measured where the hardware lets us, estimated
where it does not, and always labelled which.

* :func:`run_with_energy`: run a command, sampling NVML (GPUs) and RAPL (CPU packages) and
  timing its CPU seconds (``advscale energy -- CMD``).
* :func:`energy_from_log`: the same from an ``nvidia-smi`` power log (``--from-log``).
* :func:`estimate_from_flops`: an estimate from a FLOP count and an accelerator's datasheet
  (``--flops F --device h100``).
* :func:`measure_energy`: one of the three above, as a finished ``energy`` record.
* :func:`energy_payload`: the ``energy`` record from per-device figures and the constants
  (:class:`EnergyConstants`: PUE, $/kWh, gCO2/kWh, W per CPU core, each with its source).

Standard library only (``nvidia-ml-py`` is optional and imported on use); no torch.
"""

from advscale.energy.accelerators import ACCELERATORS, estimate_from_flops, get_accelerator
from advscale.energy.constants import (
    CPU_W_PER_CORE,
    GCO2_PER_KWH,
    PUE,
    USD_PER_KWH,
    EnergyConstants,
)
from advscale.energy.fromlog import energy_from_log, parse_power_log
from advscale.energy.measure import EnergyResult, measure_energy
from advscale.energy.report import DeviceEnergy, energy_payload, summary_line
from advscale.energy.runner import RunOutcome, run_with_energy
from advscale.energy.samplers import NvmlSampler, PowerMonitor, RaplSampler

__all__ = [
    "ACCELERATORS", "CPU_W_PER_CORE", "GCO2_PER_KWH", "PUE", "USD_PER_KWH", "DeviceEnergy",
    "EnergyConstants", "EnergyResult", "NvmlSampler", "PowerMonitor", "RaplSampler", "RunOutcome",
    "energy_from_log", "energy_payload", "estimate_from_flops", "get_accelerator",
    "measure_energy",
    "parse_power_log", "run_with_energy", "summary_line",
]
