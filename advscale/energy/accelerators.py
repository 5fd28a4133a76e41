"""A small table of accelerators and CPUs, and energy estimated from a FLOP count.

Peak throughputs are the vendors' datasheet figures for **dense** math (the "with sparsity"
figures halved), in FLOP/s; board power is the datasheet's maximum (TDP/TBP), in W. CPUs are
in the table too, so a CPU-trained run can be estimated afterwards: their peak is cores × base
clock × FP32 FLOPs per cycle (the vector FMA units), their power the package TDP; ``cpu`` is one
generic x86 core (AVX2, two FMA units, 3 GHz) at the ``cpu_w_per_core`` assumption (10 W), so
its estimate needs no core count (energy per FLOP does not depend on it). An estimate from
FLOPs assumes the device runs at ``utilization`` × peak and draws its full TDP the whole time:
both are assumptions, and the record says so.

    gpu_s = FLOPs / (peak × utilization);   IT kWh = gpu_s × board_power_w / 3.6e6

(``gpu_s`` is the device time of one device: GPU-seconds, or for ``cpu`` core-seconds.)
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
    kind: str = "gpu"
    """``gpu`` (an accelerator) or ``cpu`` (a CPU package, or ``cpu``: one generic core)."""

    @property
    def default_precision(self) -> str:
        """bf16 where the table has its peak (tensor cores), else fp32."""
        return "bf16" if "bf16" in self.peak_flops else "fp32"


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
    # CPUs: FP32 peak = cores x base clock x FLOPs/cycle (2 FMA units x vector lanes x 2)
    Accelerator("cpu", {"fp32": 96e9}, 10.0,
                "advscale's generic x86 core: 2 AVX2 FMA units x 8 FP32 lanes x 2 FLOPs x "
                "3.0 GHz = 96 GFLOP/s; 10 W per busy core (the cpu_w_per_core assumption)",
                kind="cpu"),
    Accelerator("epyc-9654", {"fp32": 96 * 2.4e9 * 32}, 360.0,
                "AMD EPYC 9654 product page: 96 cores, 2.4 GHz base, 360 W default TDP; Zen 4: "
                "2 x 256-bit FMA = 32 FP32 FLOPs/cycle", kind="cpu"),
    Accelerator("xeon-8480", {"fp32": 56 * 2.0e9 * 64}, 350.0,
                "Intel Xeon Platinum 8480+ product page: 56 cores, 2.0 GHz base, 350 W TDP; "
                "2 AVX-512 FMA units = 64 FP32 FLOPs/cycle", kind="cpu"),
)}

ALIASES = {"h100": "h100-sxm", "a100": "a100-sxm", "h200-sxm": "h200", "v100-sxm": "v100",
           "cpu-core": "cpu", "xeon-8480+": "xeon-8480"}

DEFAULT_UTILIZATION = 0.4
"""Assumed fraction of peak FLOP/s achieved (model FLOPs utilisation); an assumption."""


def get_accelerator(name: str) -> Accelerator:
    """An accelerator by (case-insensitive) name or alias; AdvscaleError lists the known ones."""
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in ACCELERATORS:
        known = ", ".join(sorted([*ACCELERATORS, *ALIASES]))
        raise AdvscaleError(f"unknown hardware {name!r}; known: {known}", field="hardware")
    return ACCELERATORS[key]


def estimate_from_flops(
    flops: float,
    device: str,
    utilization: float = DEFAULT_UTILIZATION,
    precision: str | None = None,
    board_power_w: float | None = None,
) -> tuple[list[DeviceEnergy], float, dict[str, object]]:
    """Estimate accelerator time and energy for ``flops`` FLOPs on ``device``.

    ``device``: a name of :data:`ACCELERATORS` (GPUs and CPUs); ``precision``: the peak used
    (default: bf16 where the table has it, else fp32). Returns (devices, duration_s, extra
    record fields). ``duration_s`` is the device time of one device (GPU-seconds; core-seconds
    for ``cpu``); spreading it over G devices divides wall time by G, not energy.
    """
    if not (flops >= 0 and flops != float("inf")):
        raise AdvscaleError(f"flops {flops!r} must be a finite, non-negative number of FLOPs",
                            field="flops")
    if not 0 < utilization <= 1:
        raise AdvscaleError(f"utilization {utilization} must be in (0, 1]", field="utilization")
    acc = get_accelerator(device)
    prec = (precision or acc.default_precision).lower()
    if prec not in acc.peak_flops:
        raise AdvscaleError(f"{acc.name} has no {precision} peak in the table; "
                            f"choose from {', '.join(acc.peak_flops)}")
    power = acc.board_power_w if board_power_w is None else float(board_power_w)
    if not power > 0:
        raise AdvscaleError(f"board power {power} W must be > 0")
    peak = acc.peak_flops[prec]
    gpu_s = flops / (peak * utilization)
    joules = gpu_s * power
    what = "TDP" if acc.kind == "cpu" else "board power"
    method = (f"estimated: FLOPs / ({peak / T:g} TFLOP/s {prec} peak x utilization "
              f"{utilization:g}) x {power:g} W {what} (assumed; {acc.source})")
    dev = DeviceEnergy(device=acc.kind, kind=acc.kind, name=acc.name, basis=ESTIMATED,
                       method=method,
                       energy_kwh=joules / J_PER_KWH, mean_power_w=power, max_power_w=power)
    extra: dict[str, object] = {
        "flops": float(flops), "accelerator": acc.name, "precision": prec,
        "peak_flops_per_s": peak, "utilization": utilization, "board_power_w": power,
        "accelerator_source": acc.source, "gpu_s": gpu_s, "gpu_hours": gpu_s / 3600.0,
    }
    return [dev], gpu_s, extra
