"""Energy from a GPU power log recorded elsewhere, as Debenedetti et al. measured it.

The log is what ``nvidia-smi --query-gpu=timestamp,power.draw --format=csv -l 1`` prints::

    timestamp, power.draw [W]
    2024/01/15 10:00:00.000, 250.12 W
    2024/01/15 10:00:01.002, 251.40 W

Accepted variations: ``--format=csv,nounits`` (no `` W``), ``power.draw.instant`` /
``power.draw.average`` columns, extra columns, ISO timestamps, ``[N/A]`` readings (skipped and
counted). Several GPUs: an ``index`` (or ``uuid``, ``pci.bus_id``) column separates them; without
one, rows sharing a timestamp are different GPUs, or ``gpus=N`` assigns rows round-robin.

Each GPU's energy is the trapezoid integral of its samples over time (for evenly spaced samples
this is the mean power × the logged time span, the paper's method).
"""

from __future__ import annotations

import csv
import datetime as _dt
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from advscale.energy.report import J_PER_KWH, MEASURED, DeviceEnergy, trapezoid_j
from advscale.errors import AdvscaleError

_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f",
                 "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")
_ID_COLUMNS = ("index", "uuid", "pci.bus_id")


def parse_timestamp(text: str) -> _dt.datetime:
    """A timestamp as nvidia-smi prints it (``2024/01/15 10:00:00.000``) or ISO-8601."""
    s = text.strip()
    for fmt in _TIME_FORMATS:
        try:
            return _dt.datetime.strptime(s, fmt)
        except ValueError:
            continue
    try:
        return _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"unrecognised timestamp {text!r}") from None


def parse_power(text: str) -> float | None:
    """``250.12 W`` or ``250.12`` → 250.12; ``[N/A]`` and friends → None."""
    s = text.strip()
    if s.endswith("W"):
        s = s[:-1].strip()
    try:
        value = float(s)
    except ValueError:
        return None
    return value if value >= 0 else None


def _log_columns(rows: Iterator[list[str]], name: str
                 ) -> tuple[list[str], dict[str, int], int, int | None]:
    """The header, column indices, the power column and the GPU-id column (if any)."""
    try:
        header = [h.strip().lower() for h in next(rows)]
    except StopIteration:
        raise AdvscaleError(f"{name}: empty power log") from None
    cols = {h.split(" [")[0]: i for i, h in enumerate(header)}
    if "timestamp" not in cols:
        raise AdvscaleError(f"{name}: no 'timestamp' column (header {', '.join(header)}); "
                            "record it with nvidia-smi's query-gpu=timestamp,power.draw and "
                            "format=csv options")
    power_col = next((i for h, i in cols.items() if h.startswith("power.draw")), None)
    if power_col is None:
        raise AdvscaleError(f"{name}: no 'power.draw' column (header {', '.join(header)})")
    id_col = next((cols[c] for c in _ID_COLUMNS if c in cols), None)
    return header, cols, power_col, id_col


def parse_power_log(
    lines: Iterable[str], name: str = "<log>", gpus: int | None = None
) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """Samples per GPU, ``{gpu id: [(seconds since the first row, watts), ...]}``, and the
    number of rows skipped for an unreadable power value. Raises AdvscaleError naming
    ``name:line`` for a malformed log.
    """
    rows = csv.reader(line for line in lines if line.strip())
    header, cols, power_col, id_col = _log_columns(rows, name)
    if gpus is not None and gpus < 1:
        raise AdvscaleError(f"gpus must be >= 1, got {gpus}")

    series: dict[str, list[tuple[float, float]]] = {}
    t_first: _dt.datetime | None = None
    last_stamp, same_stamp = None, 0
    skipped = n = 0
    for lineno, row in enumerate(rows, start=2):
        if len(row) <= max(cols["timestamp"], power_col):
            raise AdvscaleError(f"{name}:{lineno}: expected {len(header)} columns, got {len(row)}")
        stamp = row[cols["timestamp"]].strip()
        if stamp.lower() == "timestamp":
            continue  # a repeated header (nvidia-smi restarted into the same file)
        try:
            when = parse_timestamp(stamp)
        except ValueError as e:
            raise AdvscaleError(f"{name}:{lineno}: {e}") from None
        if id_col is not None:
            gpu = row[id_col].strip()
        elif gpus is not None:
            gpu = str(n % gpus)
        else:
            same_stamp = same_stamp + 1 if stamp == last_stamp else 0
            gpu = str(same_stamp)
        last_stamp = stamp
        n += 1
        watts = parse_power(row[power_col])
        if watts is None:
            skipped += 1
            continue
        if t_first is None:
            t_first = when
        series.setdefault(gpu, []).append(((when - t_first).total_seconds(), watts))
    if not series:
        raise AdvscaleError(f"{name}: no power readings in the log")
    for gpu, samples in series.items():
        if any(t1 < t0 for (t0, _), (t1, _) in zip(samples, samples[1:], strict=False)):
            raise AdvscaleError(f"{name}: GPU {gpu}: timestamps go backwards; interleaved GPUs "
                                "without an index column? pass the number of GPUs")
    return series, skipped


def energy_from_log(
    path: str | os.PathLike[str], gpus: int | None = None
) -> tuple[list[DeviceEnergy], float, dict[str, object]]:
    """Per-GPU measured energy from an nvidia-smi power log; returns (devices, duration_s,
    extra record fields: the log path, rows skipped, the sampling interval)."""
    p = Path(path)
    if str(path) == "-":
        import sys

        lines: Iterable[str] = sys.stdin
        name = "<stdin>"
    elif not p.is_file():
        raise AdvscaleError(f"{path}: no such power log")
    else:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
        name = str(path)
    series, skipped = parse_power_log(lines, name, gpus)
    devices = []
    start = min(s[0][0] for s in series.values())
    end = max(s[-1][0] for s in series.values())
    gaps = []
    for gpu in sorted(series, key=lambda g: (len(g), g)):
        samples = series[gpu]
        if len(samples) < 2:
            raise AdvscaleError(f"{name}: GPU {gpu} has {len(samples)} reading; need at least 2")
        joules = trapezoid_j(samples)
        span = samples[-1][0] - samples[0][0]
        gaps += [t1 - t0 for (t0, _), (t1, _) in zip(samples, samples[1:], strict=False)]
        devices.append(DeviceEnergy(
            device=f"gpu:{gpu}", kind="gpu", basis=MEASURED,
            method=f"nvidia-smi power.draw log ({len(samples)} samples), trapezoid integral",
            energy_kwh=joules / J_PER_KWH,
            mean_power_w=joules / span if span > 0 else None,
            max_power_w=max(w for _, w in samples), samples=len(samples),
        ))
    gaps.sort()
    extra = {"log": str(path), "rows_skipped": skipped,
             "interval_s": gaps[len(gaps) // 2] if gaps else None}
    return devices, end - start, extra
