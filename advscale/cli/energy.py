"""``advscale energy``: measure (or estimate, and say so) the energy, cost and CO2 of a run.

A thin adapter over :func:`advscale.api.measure_energy`; the conversion constants are
:class:`~advscale.energy.constants.EnergyConstants`'s fields.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from advscale import api
from advscale.cli.common import fail, handle_errors
from advscale.cli.logs import note
from advscale.cli.requests import request_command
from advscale.cli.shared import common
from advscale.records import append_record, write_record

CONTEXT = {"allow_interspersed_args": False}
"""Everything after the command's first word (or after ``--``) belongs to the command."""


@handle_errors
@request_command(api.EnergyConstants)
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
    hardware: str = typer.Option(
        None, "--hardware", help="Hardware for --flops: h100, h200, a100, v100, l4, mi300x, ..., "
        "or a CPU: cpu (one generic core), epyc-9654, xeon-8480."
    ),
    device_alias: str = typer.Option(None, "--device", hidden=True),
    utilization: float = typer.Option(
        0.4, "--utilization", help="--flops: assumed fraction of peak FLOP/s achieved."
    ),
    precision: str = typer.Option(None, help="--flops: peak of bf16, fp16, tf32 or fp32.",
                                  show_default="bf16 where the hardware has it, else fp32"),
    board_power_w: float = typer.Option(
        None, "--board-power-w", help="--flops: assumed power (W) instead of the datasheet's."
    ),
    interval: float = typer.Option(1.0, "--interval", help="Sampling interval in seconds."),
    require_measured: bool = typer.Option(
        False, "--require-measured", help="Fail when nothing can be measured (no estimates)."
    ),
    output: Path = common("output"),
    rapl_root: Path = typer.Option(
        Path("/sys/class/powercap"), "--rapl-root", help="Powercap sysfs directory (RAPL)."
    ),
    no_nvml: bool = typer.Option(False, "--no-nvml", help="Do not read GPUs through NVML."),
    no_rapl: bool = typer.Option(False, "--no-rapl", help="Do not read RAPL CPU counters."),
    *,
    given: dict[str, Any],
) -> None:
    """Run a command and account for its energy, or compute it from a power log or FLOPs.

    Writes one `energy` JSONL record, after the command's own output (-o: appended to a JSONL
    file instead).

    Every figure is labelled measured (which counter) or estimated (which assumption).
    """
    result = api.measure_energy(
        command, from_log=from_log, gpus=gpus, flops=flops, hardware=hardware or device_alias,
        utilization=utilization, precision=precision, board_power_w=board_power_w,
        interval_s=interval, nvml=False if no_nvml else None,
        rapl_root=None if no_rapl else rapl_root, require_measured=require_measured,
        capture=False, result=True, **given)
    exit_code = result.exit_code
    if result.stdout_broken and output is None:
        note("stdout was closed; the energy record could not be written")
        sys.stdout = open(os.devnull, "w")  # keep the exit flush quiet
        raise typer.Exit(exit_code or 1)
    if output is not None:
        append_record(output, result.record)
    else:
        write_record(result.record)
    if require_measured and not result.measured_any and exit_code == 0:
        raise fail("--require-measured: nothing was measured; the record is estimated", 3)
    if exit_code:
        raise typer.Exit(exit_code)
