"""``advscale.measure_energy``: energy, cost and CO2 of a command, a power log or FLOPs."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from typing import Any

from advscale.energy.constants import EnergyConstants
from advscale.errors import AdvscaleError

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

__all__ = ["EnergyConstants", "measure_energy"]


def measure_energy(command: Sequence[str] | None = None, *, hardware: str | None = None,
                   flops: float | str | None = None, capture: bool = True,
                   result: bool = False, **options: Any) -> Any:
    """The ``energy`` record of running ``command`` (argv list), measured by NVML/RAPL counters
    where readable and estimated (labelled so) otherwise; or, with ``from_log=`` (an nvidia-smi
    CSV) or ``flops=`` and ``hardware=`` (an accelerator model: ``h100``, ``a100``, ...), from
    those instead. ``options``: :class:`~advscale.energy.constants.EnergyConstants` fields
    (``pue``, ``usd_per_kwh``, ``gco2_per_kwh``, ``cpu_w_per_core``) and
    :func:`advscale.energy.measure.measure_energy`'s (``gpus``, ``utilization``, ``precision``,
    ``board_power_w``, ``interval_s``, ``nvml``, ``rapl_root``, ``require_measured``). The
    command's stdout is captured, not printed (``capture=False``: it goes to this process's
    stdout). With ``result`` the whole :class:`~advscale.energy.measure.EnergyResult` (exit
    code, ...) is returned. The record's one-line summary is logged.
    """
    from advscale.energy.measure import measure_energy as measure
    from advscale.energy.report import summary_line

    names = {"pue", "usd_per_kwh", "gco2_per_kwh", "cpu_w_per_core"}
    constants = EnergyConstants(**{k: options.pop(k) for k in list(options) if k in names})
    if isinstance(flops, str):
        try:
            flops = float(flops)
        except ValueError:
            raise AdvscaleError(f"flops {flops!r} is not a number of FLOPs",
                                field="flops") from None
    got = measure(list(command) if command else None, flops=flops, device=hardware,
                  constants=constants, out=io.BytesIO() if capture else None, **options)
    if not got.stdout_broken:
        log.info(summary_line(got.record))
    return got if result else got.record
