"""Run a command and account for its energy: ``advscale energy -- CMD ARGS...``.

The child inherits stdin, stderr and the environment; its stdout is streamed through in chunks,
byte for byte, to ``out`` (this process's stdout by default) while a
:class:`~advscale.energy.samplers.PowerMonitor` samples the counters. When the child has exited
the caller appends the ``energy`` record *after* the child's output (a newline is added first
only when the child's output did not end with one, so the record is its own JSONL line).

Signals: SIGTERM, and SIGINT not typed at the terminal (e.g. ``kill -INT``), are forwarded to
the child. A Ctrl-C typed at the terminal already reaches the child, which shares the
terminal's foreground process group, so it is not sent twice. The third signal kills the child
(SIGKILL). Either way the child is waited for and the record is still written.

The child's CPU time (user + system, including its waited-for descendants) is always measured;
when no RAPL counter is readable, CPU energy is *estimated* from it at an assumed wattage per
busy core. This module is POSIX-only.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from advscale.energy.constants import EnergyConstants
from advscale.energy.report import ESTIMATED, J_PER_KWH, DeviceEnergy, energy_payload
from advscale.energy.samplers import RAPL_ROOT, PowerMonitor
from advscale.errors import AdvscaleError

CHUNK = 65536


@dataclass
class RunOutcome:
    """What :func:`run_with_energy` returns: the child's exit code and the record payload."""

    exit_code: int
    payload: dict[str, Any]
    signals: list[str] = field(default_factory=list)
    stdout_broken: bool = False


def exit_status(returncode: int) -> int:
    """A shell-style exit status: the code, or 128 + N when the child died of signal N."""
    return 128 - returncode if returncode < 0 else returncode


def cpu_estimate(cpu_s: float, duration_s: float, w_per_core: float, why: str) -> DeviceEnergy:
    """CPU energy *estimated* as CPU-seconds × an assumed wattage per busy core."""
    joules = cpu_s * w_per_core
    return DeviceEnergy(
        device="cpu", kind="cpu", basis=ESTIMATED, energy_kwh=joules / J_PER_KWH,
        method=(f"estimated: {cpu_s:.4g} CPU-seconds of the command x {w_per_core:g} W per busy "
                f"core (assumed; {why})"),
        mean_power_w=joules / duration_s if duration_s > 0 else None,
    )


def run_with_energy(
    cmd: Sequence[str],
    out: IO[bytes] | None = None,
    interval_s: float = 1.0,
    constants: EnergyConstants | None = None,
    nvml: Any = None,
    rapl_root: str | os.PathLike[str] | None = RAPL_ROOT,
    require_measured: bool = False,
    forward_signals: bool = True,
) -> RunOutcome:
    """Run ``cmd``, stream its stdout to ``out``, and measure or estimate its energy.

    ``nvml``: a pynvml-like module (None imports ``pynvml``; False skips GPUs); ``rapl_root``:
    the powercap directory (None skips RAPL). ``require_measured``: raise AdvscaleError before
    starting the command when no counter is readable. Returns the child's exit status (128 + N
    for signal N) and the ``energy`` payload; raises AdvscaleError when the command cannot be
    started.
    """
    if not cmd:
        raise AdvscaleError("no command to run: advscale energy [OPTIONS] -- CMD ARGS...")
    constants = constants or EnergyConstants()
    monitor = PowerMonitor(interval_s, nvml, rapl_root,
                           visible_gpus=os.environ.get("CUDA_VISIBLE_DEVICES"))
    unavailable = monitor.open()
    if require_measured and not monitor.can_measure:
        raise AdvscaleError("require_measured: no power counter is readable ("
                            + "; ".join(f"{k}: {v}" for k, v in unavailable.items()) + ")",
                            field="require_measured")
    if out is None:
        sys.stdout.flush()
        out = sys.stdout.buffer
    sys.stderr.flush()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    monitor.start()
    try:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, bufsize=0)
    except OSError as e:
        monitor.stop()
        raise AdvscaleError(f"cannot run {cmd[0]!r}: {e.strerror or e}") from None
    with _forwarding(proc, forward_signals) as received:
        broken = _pump(proc, out)
        returncode = proc.wait()
    devices = monitor.stop()
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    duration = monitor.duration_s

    if "nvml" not in unavailable and not any(d.kind == "gpu" for d in devices):
        unavailable["nvml"] = "no GPU reading succeeded during the run"
    if not any(d.kind == "cpu" for d in devices):
        why = unavailable.get("rapl") or "no RAPL reading succeeded during the run"
        unavailable.setdefault("rapl", why)
        devices.append(cpu_estimate(cpu_s, duration, constants.cpu_w_per_core,
                                    "no RAPL counter readable"))
    code = exit_status(returncode)
    extra = {"command": list(cmd), "exit_code": code, "signals": received, "cpu_s": cpu_s,
             "interval_s": monitor.interval_s}
    payload = energy_payload(devices, duration, "run", constants, extra, unavailable)
    return RunOutcome(code, payload, received, broken)


def _pump(proc: subprocess.Popen, out: IO[bytes]) -> bool:
    """Copy the child's stdout to ``out`` chunk by chunk until EOF or the child is gone.

    Returns True when ``out`` broke (downstream closed): the pipe is then closed so the child
    sees a broken pipe too, as in a shell pipeline.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    last = b"\n"
    exited = False
    try:
        while True:
            if not exited:
                ready, _, _ = select.select([fd], [], [], 0.25)
                if not ready:
                    if proc.poll() is not None:
                        # Exited, but a descendant may hold the pipe: drain without blocking.
                        exited = True
                        os.set_blocking(fd, False)
                    continue
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                break
            out.write(chunk)
            out.flush()
            last = chunk[-1:]
        if last != b"\n":
            out.write(b"\n")  # the record must start on its own line
            out.flush()
    except BrokenPipeError:
        return True
    finally:
        proc.stdout.close()
    return False


def _terminal_foreground() -> bool:
    """True when this process is in the foreground process group of its terminal."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


@contextlib.contextmanager
def _forwarding(proc: subprocess.Popen, enabled: bool) -> Iterator[list[str]]:
    """Forward SIGINT/SIGTERM to the child while it runs (see the module doc)."""
    received: list[str] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield received
        return
    terminal = _terminal_foreground()

    def handler(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        if proc.poll() is not None:
            return
        if len(received) >= 3:
            proc.kill()
        elif signum == signal.SIGINT and terminal:
            pass  # Ctrl-C at the terminal: the child got its own SIGINT
        else:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
