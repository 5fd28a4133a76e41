"""Per-device energy figures and the ``energy`` record payload built from them.

Every device figure says whether it was *measured* (and by which counter) or *estimated* (and
from which assumed wattage); the record's ``basis`` is ``measured`` only when every figure was,
``estimated`` when none was, and ``mixed`` otherwise. Units: energy in kWh, power in W,
time in s, cost in USD, CO2 in kg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from advscale.energy.constants import EnergyConstants

J_PER_KWH = 3.6e6
"""Joules in one kilowatt-hour."""

MEASURED = "measured"
ESTIMATED = "estimated"


@dataclass
class DeviceEnergy:
    """Energy of one device over a run: ``energy_kwh``, ``basis`` and the ``method`` used.

    ``device`` names it (``gpu:0``, ``cpu-package:0``, ``cpu``); ``kind`` is ``gpu`` or
    ``cpu``; ``method`` names the counter (measured) or the assumed wattage (estimated).
    """

    device: str
    kind: str
    energy_kwh: float
    basis: str
    method: str
    name: str | None = None
    mean_power_w: float | None = None
    max_power_w: float | None = None
    samples: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device, "kind": self.kind, "name": self.name,
            "basis": self.basis, "method": self.method, "energy_kwh": self.energy_kwh,
            "mean_power_w": self.mean_power_w, "max_power_w": self.max_power_w,
            "samples": self.samples,
        }


def trapezoid_j(samples: Sequence[tuple[float, float]]) -> float:
    """Energy in J from ``(time_s, power_w)`` samples in time order (trapezoid rule)."""
    total = 0.0
    for (t0, p0), (t1, p1) in zip(samples, samples[1:], strict=False):
        total += 0.5 * (p0 + p1) * (t1 - t0)
    return total


def overall_basis(devices: Sequence[DeviceEnergy]) -> str:
    """``measured`` if every device was measured, ``estimated`` if none was, else ``mixed``."""
    bases = {d.basis for d in devices}
    if bases == {MEASURED}:
        return MEASURED
    if MEASURED in bases:
        return "mixed"
    return ESTIMATED


def energy_payload(
    devices: Sequence[DeviceEnergy],
    duration_s: float,
    mode: str,
    constants: EnergyConstants,
    extra: Mapping[str, Any] | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The payload of an ``energy`` record (docs/formats.md) from per-device figures.

    ``mode`` is ``run``, ``log`` or ``flops``; ``extra`` fields (the command, exit code, FLOPs
    settings, ...) follow the headline fields; ``unavailable`` maps a counter (``nvml``,
    ``rapl``) to why it could not be read.
    """
    basis = overall_basis(devices)
    it_kwh = sum((d.energy_kwh for d in devices), 0.0)
    measured_kwh = sum((d.energy_kwh for d in devices if d.basis == MEASURED), 0.0)
    facility_kwh = it_kwh * constants.pue
    cost_usd = facility_kwh * constants.usd_per_kwh
    co2_kg = facility_kwh * constants.gco2_per_kwh / 1000.0
    payload: dict[str, Any] = {"basis": basis, "measured": basis == MEASURED}
    if basis != MEASURED:
        payload["notice"] = _notice(basis, devices, unavailable)
    payload["mode"] = mode
    payload.update(dict(extra or {}))
    payload.update({
        "duration_s": duration_s,
        "devices": [d.as_dict() for d in devices],
        "it_energy_kwh": it_kwh,
        "measured_energy_kwh": measured_kwh,
        "estimated_energy_kwh": it_kwh - measured_kwh,
        "pue": constants.pue,
        "facility_energy_kwh": facility_kwh,
        "usd_per_kwh": constants.usd_per_kwh,
        "cost_usd": cost_usd,
        "co2_g_per_kwh": constants.gco2_per_kwh,
        "co2_kg": co2_kg,
        "figures": {
            "it_energy_kwh": f"{basis}: sum of the devices' energy_kwh (see devices[].method)",
            "facility_energy_kwh": f"it_energy_kwh x PUE {constants.pue:g} (assumed)",
            "cost_usd": f"facility_energy_kwh x {constants.usd_per_kwh:g} USD/kWh (assumed)",
            "co2_kg": f"facility_energy_kwh x {constants.gco2_per_kwh:g} gCO2/kWh (assumed)",
        },
        "assumptions": constants.sources(),
        "unavailable": dict(unavailable or {}),
    })
    return payload


def _notice(
    basis: str, devices: Sequence[DeviceEnergy], unavailable: Mapping[str, str] | None
) -> str:
    est = [d for d in devices if d.basis != MEASURED]
    what = "; ".join(f"{d.device}: {d.method}" for d in est) or "no device"
    why = "; ".join(f"{k}: {v}" for k, v in (unavailable or {}).items())
    head = "ESTIMATED, NOT MEASURED" if basis == ESTIMATED else "PARTLY ESTIMATED"
    return f"{head}: {what}" + (f" (no counter: {why})" if why else "")


def human_duration(seconds: float) -> str:
    """``42.0 s``, ``12.5 min``, ``3.2 h`` or ``35.1 days`` (plus the seconds past a minute)."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit} ({seconds:.0f} s)"
    return f"{seconds:.0f} s"  # pragma: no cover


def summary_line(payload: Mapping[str, Any]) -> str:
    """One human line about an energy payload (for stderr)."""
    tag = {"measured": "measured", "estimated": "ESTIMATED", "mixed": "PARTLY ESTIMATED"}
    s = (f"energy [{tag.get(payload['basis'], payload['basis'])}]: "
         f"{human_duration(payload['duration_s'])}, IT {payload['it_energy_kwh']:.6g} kWh, "
         f"facility "
         f"{payload['facility_energy_kwh']:.6g} kWh (PUE {payload['pue']:g}), "
         f"${payload['cost_usd']:.4g}, {payload['co2_kg']:.4g} kg CO2")
    if payload.get("notice"):
        s += f"\n  {payload['notice']}"
    return s
