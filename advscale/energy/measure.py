"""One entry point for ``advscale energy``: the ``energy`` record of a command, a log or FLOPs.

:func:`measure_energy` picks the mode from what it is given (exactly one of ``command``,
``from_log``, ``flops``), measures or estimates, and returns the finished record; the CLI only
writes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from advscale.energy.accelerators import estimate_from_flops, get_accelerator
from advscale.energy.constants import EnergyConstants
from advscale.energy.fromlog import energy_from_log
from advscale.energy.report import energy_payload
from advscale.energy.runner import run_with_energy
from advscale.errors import AdvscaleError
from advscale.records import make_record
from advscale.records.runs import run_dir_of, run_id_of_dir

RAPL_ROOT = Path("/sys/class/powercap")


@dataclass
class EnergyResult:
    """The ``energy`` record, the measured command's exit code and whether stdout broke."""

    record: dict[str, Any]
    exit_code: int = 0
    stdout_broken: bool = False

    @property
    def measured_any(self) -> bool:
        return any(d["basis"] == "measured" for d in self.record["devices"])


def measure_energy(
    command: Sequence[str] | None = None,
    *,
    from_log: str | os.PathLike[str] | None = None,
    gpus: int | None = None,
    flops: float | None = None,
    device: str | None = None,
    utilization: float = 0.4,
    precision: str | None = None,
    board_power_w: float | None = None,
    interval_s: float = 1.0,
    constants: EnergyConstants | None = None,
    nvml: bool | None = None,
    rapl_root: str | os.PathLike[str] | None = RAPL_ROOT,
    require_measured: bool = False,
    out: IO[bytes] | None = None,
) -> EnergyResult:
    """Measure (or estimate, and say so) the energy of ``command``, a power log, or FLOPs.

    ``nvml=False`` / ``rapl_root=None`` turn those counters off; ``out`` receives the
    command's stdout (default: this process's). Raises AdvscaleError for unusable inputs.
    """
    modes = [m for m, given in (("command", bool(command)), ("from_log", from_log is not None),
                                ("flops", flops is not None)) if given]
    if len(modes) != 1:
        raise AdvscaleError(
            "give exactly one of: a command to run, from_log FILE, or flops F with the hardware"
            + (f" (got {' and '.join(modes)})" if modes else ""), field="from_log,flops,hardware")
    if not interval_s > 0:
        raise AdvscaleError(f"interval_s {interval_s} must be > 0 seconds", field="interval_s")
    constants = constants or EnergyConstants()
    config: dict[str, Any] = {"pue": constants.pue, "usd_per_kwh": constants.usd_per_kwh,
                              "gco2_per_kwh": constants.gco2_per_kwh,
                              "cpu_w_per_core": constants.cpu_w_per_core}
    exit_code, broken = 0, False
    if command:
        outcome = run_with_energy(list(command), out=out, interval_s=interval_s,
                                  constants=constants, nvml=nvml, rapl_root=rapl_root,
                                  require_measured=require_measured)
        payload, exit_code, broken = outcome.payload, outcome.exit_code, outcome.stdout_broken
        run_id = run_id_of_dir(run_dir_of(command))  # `energy -- advscale train --out DIR`
        if run_id is not None:
            payload["run_id"] = run_id
        config.update(command=list(command), interval_s=interval_s)
    elif from_log is not None:
        devices, duration, extra = energy_from_log(from_log, gpus)
        payload = energy_payload(devices, duration, "log", constants, extra)
        config.update(from_log=str(from_log), gpus=gpus)
    else:
        if require_measured:
            raise AdvscaleError("require_measured: an estimate from FLOPs is not a measurement",
                                field="require_measured")
        if device is None:
            raise AdvscaleError("an estimate from flops needs the hardware it ran on (e.g. "
                                "h100, or cpu for a CPU core)", field="device")
        if board_power_w is None and get_accelerator(device).name == "cpu":
            board_power_w = constants.cpu_w_per_core  # one generic core at the assumed wattage
        devices, duration, extra = estimate_from_flops(float(flops), device, utilization,
                                                       precision, board_power_w)
        payload = energy_payload(devices, duration, "flops", constants, extra)
        config.update(flops=float(flops), device=device, utilization=utilization,
                      precision=extra["precision"])
    return EnergyResult(make_record("energy", payload, config=config), exit_code, broken)
