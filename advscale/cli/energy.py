"""``advscale energy``: measure (or estimate, and say so) the energy, cost and CO2 of a run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors
from advscale.errors import AdvscaleError

CONTEXT = {"allow_interspersed_args": False}
"""Everything after the command's first word (or after ``--``) belongs to the command."""


@handle_errors
def energy(
    command: list[str] = typer.Argument(
        None, help="The command to run, after '--': advscale energy -- advscale train ..."
    ),
    from_log: Path = typer.Option(
        None, "--from-log",
        help="nvidia-smi power log: --query-gpu=timestamp,power.draw --format=csv -l 1 ('-': "
        "stdin).",
    ),
    gpus: int = typer.Option(
        None, "--gpus", help="--from-log without an index column: GPUs interleaved row by row."
    ),
    flops: str = typer.Option(None, "--flops", help="Estimate from this many FLOPs (e.g. 1e21)."),
    device: str = typer.Option(
        None, "--device", help="Accelerator for --flops: h100, h200, a100, v100, l4, mi300x, ..."
    ),
    utilization: float = typer.Option(
        0.4, "--utilization", help="--flops: assumed fraction of peak FLOP/s achieved."
    ),
    precision: str = typer.Option("bf16", help="--flops: peak of bf16, fp16, tf32 or fp32."),
    board_power_w: float = typer.Option(
        None, "--board-power-w", help="--flops: assumed power (W) instead of the datasheet's."
    ),
    interval: float = typer.Option(1.0, "--interval", help="Sampling interval in seconds."),
    pue: float = typer.Option(1.58, help="Power usage effectiveness (Uptime Institute 2018)."),
    usd_per_kwh: float = typer.Option(0.12, "--usd-per-kwh", help="Electricity price, USD/kWh."),
    gco2_per_kwh: float = typer.Option(
        566.3, "--gco2-per-kwh", help="Carbon intensity, gCO2/kWh (ML CO2 Impact, GCP us-central1)."
    ),
    cpu_w_per_core: float = typer.Option(
        10.0, "--cpu-w-per-core", help="Assumed W per busy core when RAPL is not readable."
    ),
    require_measured: bool = typer.Option(
        False, "--require-measured", help="Fail when nothing can be measured (no estimates)."
    ),
    output: Path = typer.Option(
        None, "-o", "--output", help="Append the record to this JSONL file instead of stdout."
    ),
    rapl_root: Path = typer.Option(
        Path("/sys/class/powercap"), "--rapl-root", help="Powercap sysfs directory (RAPL)."
    ),
    no_nvml: bool = typer.Option(False, "--no-nvml", help="Do not read GPUs through NVML."),
    no_rapl: bool = typer.Option(False, "--no-rapl", help="Do not read RAPL CPU counters."),
) -> None:
    """Run a command and account for its energy, or compute it from a power log or FLOPs.

    Writes one `energy` JSONL record, after the command's own output.

    Every figure is labelled measured (which counter) or estimated (which assumption).
    """
    from advscale import energy as en
    from advscale.records import append_record, make_record, write_record

    modes = [m for m, given in (("command", bool(command)), ("--from-log", from_log is not None),
                                ("--flops", flops is not None)) if given]
    if len(modes) != 1:
        raise AdvscaleError(
            "give exactly one of: -- CMD ARGS..., --from-log FILE, --flops F --device NAME"
            + (f" (got {' and '.join(modes)})" if modes else "")
        )
    if not interval > 0:
        raise AdvscaleError(f"--interval {interval} must be > 0 seconds")
    constants = en.EnergyConstants(pue, usd_per_kwh, gco2_per_kwh, cpu_w_per_core)
    config = {"pue": pue, "usd_per_kwh": usd_per_kwh, "gco2_per_kwh": gco2_per_kwh,
              "cpu_w_per_core": cpu_w_per_core}
    exit_code = 0
    if command:
        outcome = en.run_with_energy(
            command, interval_s=interval, constants=constants,
            nvml=False if no_nvml else None, rapl_root=None if no_rapl else rapl_root,
            require_measured=require_measured,
        )
        payload, exit_code = outcome.payload, outcome.exit_code
        config.update(command=command, interval_s=interval)
        if outcome.stdout_broken and output is None:
            err("advscale energy: stdout was closed; the energy record could not be written")
            sys.stdout = open(os.devnull, "w")  # keep the exit flush quiet
            raise typer.Exit(exit_code or 1)
    elif from_log is not None:
        devices, duration, extra = en.energy_from_log(from_log, gpus)
        payload = en.energy_payload(devices, duration, "log", constants, extra)
        config.update(from_log=str(from_log), gpus=gpus)
    else:
        if require_measured:
            raise AdvscaleError("--require-measured: an estimate from FLOPs is not a measurement")
        if device is None:
            raise AdvscaleError("--flops needs --device (e.g. --device h100)")
        try:
            f = float(flops)
        except ValueError:
            raise AdvscaleError(f"--flops {flops!r} is not a number of FLOPs") from None
        devices, duration, extra = en.estimate_from_flops(f, device, utilization, precision,
                                                          board_power_w)
        payload = en.energy_payload(devices, duration, "flops", constants, extra)
        config.update(flops=f, device=device, utilization=utilization, precision=precision)

    record = make_record("energy", payload, config=config)
    err(en.summary_line(payload))
    if output is not None:
        append_record(output, record)
    else:
        write_record(record)
    measured_any = any(d["basis"] == "measured" for d in payload["devices"])
    if require_measured and not measured_any and exit_code == 0:
        err("advscale: error: --require-measured: nothing was measured; the record is estimated")
        raise typer.Exit(3)
    if exit_code:
        raise typer.Exit(exit_code)
