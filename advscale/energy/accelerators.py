"""A small table of accelerators, and energy estimated from a FLOP count.

Peak throughputs are the vendors' datasheet figures for **dense** math (the "with sparsity"
figures halved), in FLOP/s; board power is the datasheet's maximum (TDP/TBP), in W. An estimate
from FLOPs assumes the device runs at ``utilization`` × peak and draws its full board power the
whole time: both are assumptions, and the record says so.

    gpu_s = FLOPs / (peak × utilization);   IT kWh = gpu_s × board_power_w / 3.6e6
"""

from __future__ import annotations

from dataclasses import dataclass

from advscale.energy.report import ESTIMATED, J_PER_KWH, DeviceEnergy
from advscale.errors import AdvscaleError

T = 1e12


@dataclass(frozen=True)
class Accelerator:
    """One accelerator: peak dense FLOP/s by precision, board power (W), and the source."""

    name: str
    peak_flops: dict[str, float]
    board_power_w: float
    source: str


ACCELERATORS: dict[str, Accelerator] = {a.name: a for a in (
    Accelerator("h100-sxm", {"fp32": 66.9 * T, "tf32": 494.7 * T, "bf16": 989.4 * T,
                             "fp16": 989.4 * T}, 700.0,
                "NVIDIA H100 Tensor Core GPU datasheet, SXM5"),
    Accelerator("h100-pcie", {"fp32": 51.2 * T, "tf32": 378.0 * T, "bf16": 756.0 * T,
                              "fp16": 756.0 * T}, 350.0,
                "NVIDIA H100 Tensor Core GPU datasheet, PCIe"),
    Accelerator("h200", {"fp32": 66.9 * T, "tf32": 494.7 * T, "bf16": 989.4 * T,
                         "fp16": 989.4 * T}, 700.0,
                "NVIDIA H200 Tensor Core GPU datasheet, SXM"),
    Accelerator("a100-sxm", {"fp32": 19.5 * T, "tf32": 156.0 * T, "bf16": 312.0 * T,
                             "fp16": 312.0 * T}, 400.0,
                "NVIDIA A100 Tensor Core GPU datasheet, SXM4"),
    Accelerator("a100-pcie", {"fp32": 19.5 * T, "tf32": 156.0 * T, "bf16": 312.0 * T,
                              "fp16": 312.0 * T}, 300.0,
                "NVIDIA A100 Tensor Core GPU datasheet, PCIe 80GB"),
    Accelerator("v100", {"fp32": 15.7 * T, "fp16": 125.0 * T}, 300.0,
                "NVIDIA V100 Tensor Core GPU datasheet, SXM2"),
    Accelerator("a10", {"fp32": 31.2 * T, "tf32": 62.5 * T, "bf16": 125.0 * T,
                        "fp16": 125.0 * T}, 150.0, "NVIDIA A10 Tensor Core GPU datasheet"),
    Accelerator("l4", {"fp32": 30.3 * T, "tf32": 60.0 * T, "bf16": 121.0 * T,
                       "fp16": 121.0 * T}, 72.0, "NVIDIA L4 Tensor Core GPU datasheet"),
    Accelerator("l40s", {"fp32": 91.6 * T, "tf32": 183.0 * T, "bf16": 362.0 * T,
                         "fp16": 362.0 * T}, 350.0, "NVIDIA L40S GPU datasheet"),
    Accelerator("t4", {"fp32": 8.1 * T, "fp16": 65.0 * T}, 70.0,
                "NVIDIA T4 Tensor Core GPU datasheet"),
    Accelerator("mi250x", {"fp32": 95.7 * T, "bf16": 383.0 * T, "fp16": 383.0 * T}, 560.0,
                "AMD Instinct MI250X datasheet (matrix FP32)"),
    Accelerator("mi300x", {"fp32": 163.4 * T, "tf32": 653.7 * T, "bf16": 1307.4 * T,
                           "fp16": 1307.4 * T}, 750.0,
                "AMD Instinct MI300X datasheet (matrix FP32)"),
)}

ALIASES = {"h100": "h100-sxm", "a100": "a100-sxm", "h200-sxm": "h200", "v100-sxm": "v100"}

DEFAULT_UTILIZATION = 0.4
"""Assumed fraction of peak FLOP/s achieved (model FLOPs utilisation); an assumption."""


def get_accelerator(name: str) -> Accelerator:
    """An accelerator by (case-insensitive) name or alias; AdvscaleError lists the known ones."""
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in ACCELERATORS:
        known = ", ".join(sorted([*ACCELERATORS, *ALIASES]))
        raise AdvscaleError(f"unknown device {name!r}; known: {known}")
    return ACCELERATORS[key]


def estimate_from_flops(
    flops: float,
    device: str,
    utilization: float = DEFAULT_UTILIZATION,
    precision: str = "bf16",
    board_power_w: float | None = None,
) -> tuple[list[DeviceEnergy], float, dict[str, object]]:
    """Estimate accelerator time and energy for ``flops`` FLOPs on ``device``.

    Returns (devices, duration_s, extra record fields). ``duration_s`` is the accelerator time
    of one device (GPU-seconds); spreading it over G devices divides wall time by G, not energy.
    """
    if not (flops >= 0 and flops != float("inf")):
        raise AdvscaleError(f"--flops {flops!r} must be a finite, non-negative number of FLOPs")
    if not 0 < utilization <= 1:
        raise AdvscaleError(f"--utilization {utilization} must be in (0, 1]")
    acc = get_accelerator(device)
    prec = precision.lower()
    if prec not in acc.peak_flops:
        raise AdvscaleError(f"{acc.name} has no {precision} peak in the table; "
                            f"choose from {', '.join(acc.peak_flops)}")
    power = acc.board_power_w if board_power_w is None else float(board_power_w)
    if not power > 0:
        raise AdvscaleError(f"board power {power} W must be > 0")
    peak = acc.peak_flops[prec]
    gpu_s = flops / (peak * utilization)
    joules = gpu_s * power
    method = (f"estimated: FLOPs / ({peak / T:g} TFLOP/s {prec} peak x utilization "
              f"{utilization:g}) x {power:g} W board power (assumed; {acc.source})")
    dev = DeviceEnergy(device="gpu", kind="gpu", name=acc.name, basis=ESTIMATED, method=method,
                       energy_kwh=joules / J_PER_KWH, mean_power_w=power, max_power_w=power)
    extra: dict[str, object] = {
        "flops": float(flops), "accelerator": acc.name, "precision": prec,
        "peak_flops_per_s": peak, "utilization": utilization, "board_power_w": power,
        "accelerator_source": acc.source, "gpu_s": gpu_s, "gpu_hours": gpu_s / 3600.0,
    }
    return [dev], gpu_s, extra
