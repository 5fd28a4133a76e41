"""Power and energy counters: NVML for GPUs, RAPL for CPU packages, sampled while a run lasts.

* :class:`NvmlSampler` reads every visible GPU through NVML (the ``pynvml`` module of
  ``nvidia-ml-py``, imported only when used, or any object with the same functions, e.g. a fake
  in tests): the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ, Volta and
  newer) when the GPU has one, and board power (``nvmlDeviceGetPowerUsage``, mW) always.
* :class:`RaplSampler` reads CPU package energy counters (``energy_uj``, µJ, wrapping at
  ``max_energy_range_uj``) under ``/sys/class/powercap`` (the root is configurable, for tests
  and containers). Since Linux 5.10 these files are root-only on most systems.
* :class:`PowerMonitor` samples both at a fixed interval in a thread and turns the readings into
  :class:`~advscale.energy.report.DeviceEnergy` figures, all ``measured``.

Counters measure whole devices: other processes' work on the same GPU or CPU package counts too.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advscale.energy.report import J_PER_KWH, MEASURED, DeviceEnergy, trapezoid_j

RAPL_ROOT = "/sys/class/powercap"
_RAPL_DOMAIN = re.compile(r"^(intel|amd)-rapl:\d+$")  # top level; not -mmio duplicates


# ---------------------------------------------------------------------------------------------
# NVML


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def visible_gpu_filter(env: str | None) -> Callable[[int, str], bool]:
    """A predicate ``(nvml_index, uuid) -> visible`` from ``CUDA_VISIBLE_DEVICES``.

    Unset: every GPU. Integers select NVML indices (which follow PCI bus order: set
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA agrees); ``GPU-...`` entries select by UUID
    prefix. An empty value hides every GPU.
    """
    if env is None:
        return lambda index, uuid: True
    entries = [e.strip() for e in env.split(",") if e.strip()]
    indices = {int(e) for e in entries if e.isdigit()}
    prefixes = [e for e in entries if not e.isdigit()]
    return lambda index, uuid: index in indices or any(uuid.startswith(p) for p in prefixes)


@dataclass
class _Gpu:
    index: int
    name: str
    uuid: str
    handle: Any
    energy_counter: bool
    energy0_mj: float | None = None
    energy1_mj: float | None = None
    power: list[tuple[float, float]] = field(default_factory=list)


class NvmlSampler:
    """GPU power and energy through NVML. ``nvml``: a pynvml-like module (None: import it)."""

    def __init__(self, nvml: Any = None, visible: str | None = None) -> None:
        self._nvml = nvml
        self._visible = visible
        self.gpus: list[_Gpu] = []
        self._open = False

    def open(self) -> str | None:
        """Initialise NVML and list visible GPUs; returns None, or why NVML is unusable."""
        nv = self._nvml
        if nv is None:
            try:
                import pynvml as nv  # nvidia-ml-py
            except ImportError:
                return "nvidia-ml-py (pynvml) is not installed"
            self._nvml = nv
        try:
            nv.nvmlInit()
        except Exception as e:  # pynvml raises NVMLError subclasses; fakes may raise anything
            return f"NVML init failed: {_text(e) or type(e).__name__}"
        self._open = True
        keep = visible_gpu_filter(self._visible)
        try:
            count = int(nv.nvmlDeviceGetCount())
            for i in range(count):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                uuid = _text(_try(nv, "nvmlDeviceGetUUID", h) or "")
                if not keep(i, uuid):
                    continue
                name = _text(_try(nv, "nvmlDeviceGetName", h) or f"GPU {i}")
                counter = _try(nv, "nvmlDeviceGetTotalEnergyConsumption", h) is not None
                self.gpus.append(_Gpu(i, name, uuid, h, counter))
        except Exception as e:
            self.close()
            return f"NVML could not list GPUs: {_text(e) or type(e).__name__}"
        if not self.gpus:
            self.close()
            return "no visible GPU" + (" (CUDA_VISIBLE_DEVICES)" if self._visible is not None
                                       else "")
        return None

    def sample(self, t: float, first: bool = False, last: bool = False) -> None:
        """Read power (and, at the first and last call, the energy counter) of every GPU."""
        nv = self._nvml
        for g in self.gpus:
            mw = _try(nv, "nvmlDeviceGetPowerUsage", g.handle)
            if mw is not None:
                g.power.append((t, float(mw) / 1000.0))
            if g.energy_counter and (first or last):
                mj = _try(nv, "nvmlDeviceGetTotalEnergyConsumption", g.handle)
                if mj is None:
                    g.energy_counter = False
                elif first:
                    g.energy0_mj = float(mj)
                else:
                    g.energy1_mj = float(mj)

    def results(self, duration_s: float) -> list[DeviceEnergy]:
        """Energy of each GPU: the energy counter's difference, else integrated power samples."""
        out = []
        for g in self.gpus:
            powers = [p for _, p in g.power]
            if g.energy_counter and g.energy0_mj is not None and g.energy1_mj is not None:
                joules = max(0.0, (g.energy1_mj - g.energy0_mj) / 1000.0)
                method = "NVML nvmlDeviceGetTotalEnergyConsumption counter (mJ), end - start"
            elif len(g.power) >= 2:
                joules = trapezoid_j(g.power)
                method = (f"NVML nvmlDeviceGetPowerUsage sampled {len(g.power)} times, "
                          "trapezoid integral")
            elif len(g.power) == 1:
                joules = g.power[0][1] * duration_s
                method = "NVML nvmlDeviceGetPowerUsage, one sample x duration"
            else:
                continue  # nothing could be read from this GPU
            out.append(DeviceEnergy(
                device=f"gpu:{g.index}", kind="gpu", name=g.name, basis=MEASURED,
                method=method, energy_kwh=joules / J_PER_KWH,
                mean_power_w=joules / duration_s if duration_s > 0 else None,
                max_power_w=max(powers) if powers else None, samples=len(g.power),
            ))
        return out

    def close(self) -> None:
        if self._open:
            _try(self._nvml, "nvmlShutdown")
            self._open = False


def _try(nv: Any, fn: str, *args: Any) -> Any:
    """Call ``nv.fn(*args)``; None when it is missing or raises (e.g. NVMLError_NotSupported)."""
    f = getattr(nv, fn, None)
    if f is None:
        return None
    try:
        return f(*args)
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------
# RAPL


@dataclass
class _RaplDomain:
    path: Path
    name: str
    max_uj: int
    last_uj: int | None = None
    total_uj: int = 0
    reads: int = 0
    readings: list[tuple[float, int]] = field(default_factory=list)


class RaplSampler:
    """CPU package energy from RAPL ``energy_uj`` counters under ``root`` (powercap sysfs)."""

    def __init__(self, root: str | os.PathLike[str] = RAPL_ROOT) -> None:
        self.root = Path(root)
        self.domains: list[_RaplDomain] = []

    def open(self) -> str | None:
        """Find readable top-level package domains; returns None, or why RAPL is unusable."""
        if not self.root.is_dir():
            return f"{self.root} does not exist (no powercap/RAPL on this machine)"
        found, denied = [], []
        for d in sorted(self.root.iterdir(), key=lambda p: p.name):
            if not _RAPL_DOMAIN.match(d.name):
                continue  # control types, subdomains (core, uncore, dram) and others
            name = _read(d / "name") or d.name
            if not name.startswith("package"):
                continue  # psys covers the whole platform and would double count
            found.append(d.name)
            energy = d / "energy_uj"
            try:
                int(energy.read_text().strip())
            except PermissionError:
                denied.append(d.name)
                continue
            except (OSError, ValueError):
                continue
            max_uj = _read(d / "max_energy_range_uj")
            self.domains.append(_RaplDomain(d, name, int(max_uj) if max_uj else 0))
        if self.domains:
            return None
        if denied:
            return (f"{self.root}: {', '.join(denied)}/energy_uj not readable "
                    "(root only since Linux 5.10)")
        if found:
            return f"{self.root}: no readable package energy counter"
        return f"{self.root}: no RAPL package domain"

    def sample(self, t: float) -> None:
        """Read every package counter, accumulating across wrap-arounds."""
        for d in self.domains:
            try:
                uj = int((d.path / "energy_uj").read_text().strip())
            except (OSError, ValueError):
                continue
            if d.last_uj is not None:
                delta = uj - d.last_uj
                if delta < 0:  # the counter wrapped at max_energy_range_uj
                    delta += d.max_uj
                d.total_uj += max(0, delta)
            d.last_uj = uj
            d.reads += 1
            d.readings.append((t, d.total_uj))

    def results(self, duration_s: float) -> list[DeviceEnergy]:
        out = []
        for i, d in enumerate(self.domains):
            if d.reads < 2:
                continue
            joules = d.total_uj / 1e6
            powers = [
                (u1 - u0) / 1e6 / (t1 - t0)
                for (t0, u0), (t1, u1) in zip(d.readings, d.readings[1:], strict=False)
                if t1 > t0
            ]
            out.append(DeviceEnergy(
                device=f"cpu-package:{i}", kind="cpu", name=d.name, basis=MEASURED,
                method=f"RAPL {d.path}/energy_uj counter (uJ), summed over {d.reads} reads "
                       "with wrap-around",
                energy_kwh=joules / J_PER_KWH,
                mean_power_w=joules / duration_s if duration_s > 0 else None,
                max_power_w=max(powers) if powers else None, samples=d.reads,
            ))
        return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------------------------------------
# The monitor


class PowerMonitor:
    """Sample NVML and RAPL every ``interval_s`` seconds between :meth:`start` and :meth:`stop`.

    ``nvml``: a pynvml-like module, None to import ``pynvml``, or False to skip GPUs.
    ``rapl_root``: the powercap directory, or None to skip RAPL. ``clock``: seconds (monotonic).
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        nvml: Any = None,
        rapl_root: str | os.PathLike[str] | None = RAPL_ROOT,
        clock: Callable[[], float] = time.monotonic,
        visible_gpus: str | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"sampling interval must be > 0 s, got {interval_s}")
        self.interval_s = float(interval_s)
        self.clock = clock
        self.nvml = None if nvml is False else NvmlSampler(nvml, visible_gpus)
        self.rapl = None if rapl_root is None else RaplSampler(rapl_root)
        self.unavailable: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._t0 = self._t1 = 0.0

    def open(self) -> dict[str, str]:
        """Open the counters; returns ``{counter: why unusable}`` for those that are not."""
        if self.nvml is None:
            self.unavailable["nvml"] = "disabled"
        else:
            why = self.nvml.open()
            if why:
                self.unavailable["nvml"] = why
                self.nvml = None
        if self.rapl is None:
            self.unavailable["rapl"] = "disabled"
        else:
            why = self.rapl.open()
            if why:
                self.unavailable["rapl"] = why
                self.rapl = None
        return dict(self.unavailable)

    @property
    def can_measure(self) -> bool:
        """True when at least one counter is readable."""
        return self.nvml is not None or self.rapl is not None

    def sample(self, first: bool = False, last: bool = False) -> float:
        """Take one reading of every open counter now; returns its time (clock seconds)."""
        t = self.clock()
        if self.nvml is not None:
            self.nvml.sample(t, first=first, last=last)
        if self.rapl is not None:
            self.rapl.sample(t)
        return t

    def begin(self) -> None:
        """Take the first reading and start the clock (no thread).

        The duration runs from the first reading to the last, the interval the energy
        counters' difference covers, so mean power = energy / duration is not skewed.
        """
        self._t0 = self.sample(first=True)

    def start(self, thread: bool = True) -> None:
        """:meth:`begin`, then sample every ``interval_s`` in a daemon thread."""
        self.begin()
        if thread and self.can_measure:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="advscale-energy",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> list[DeviceEnergy]:
        """Stop sampling, take the last reading, close NVML; returns the measured devices."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self._t1 = self.sample(last=True)
        duration = self.duration_s
        devices: list[DeviceEnergy] = []
        if self.nvml is not None:
            devices += self.nvml.results(duration)
            self.nvml.close()
        if self.rapl is not None:
            devices += self.rapl.results(duration)
        return devices

    @property
    def duration_s(self) -> float:
        return max(0.0, self._t1 - self._t0)
