"""The resume state (``--state``) and results (``--results``) files of ``advscale attack``.

Both are append-only JSONL logs under the one torn-last-line policy of
:mod:`advscale.core.jsonl` (through :func:`advscale.records.read_log` and
:func:`advscale.records.append_record`): an unterminated, unparsable last line (a kill mid-write)
is skipped on read and cut off before the next append; a corrupt complete line is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from advscale.attacks.chunks import ChunkResult
from advscale.attacks.inputs import Log, info_log
from advscale.core.fileio import atomic_write
from advscale.errors import AdvscaleError
from advscale.records import RecordError, append_record, read_log


class StateFile:
    """Append-only ``attack.chunk`` records of finished chunks (the resume state).

    With adversarial images requested, each chunk's arrays are kept beside it in ``STATE.adv/``.
    """

    def __init__(self, path: str | os.PathLike[str], log: Log = info_log) -> None:
        self.path = Path(path)
        self.log = log

    def records(self) -> list[dict[str, Any]]:
        """Every record of the file (a torn last line skipped, with a note to ``log``)."""
        try:
            return read_log(self.path, lambda m: self.log(f"advscale attack: {m}"))
        except AdvscaleError as e:
            raise RecordError(f"{e}; remove that line or use a fresh --state file") from None

    def done(self, key: str) -> dict[int, dict[str, Any]]:
        """Finished chunk records of the evaluation ``key``, by chunk index."""
        out: dict[int, dict[str, Any]] = {}
        for r in self.records():
            if r.get("kind") == "attack.chunk" and r.get("settings_key") == key:
                out.setdefault(int(r["chunk"]), r)
        return out

    def append(self, record: Mapping[str, Any]) -> None:
        append_record(self.path, record)

    def arrays_path(self, key: str, chunk: int) -> Path:
        return Path(f"{self.path}.adv") / f"{key}-{chunk:06d}.npz"

    def save_arrays(self, key: str, res: ChunkResult) -> None:
        p = self.arrays_path(key, res.chunk)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(p, "wb") as f:
            np.savez(f, pred_clean=res.pred_clean, pred_adv=res.pred_adv, robust=res.robust,
                     x_adv=res.x_adv, broken_by=np.array(res.broken_by, dtype="U16"))

    def drop_arrays(self, key: str, chunks: Iterable[int]) -> None:
        for c in chunks:
            self.arrays_path(key, c).unlink(missing_ok=True)
        d = Path(f"{self.path}.adv")
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()

    def load_arrays(self, key: str, record: Mapping[str, Any]) -> ChunkResult | None:
        p = self.arrays_path(key, int(record["chunk"]))
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                return ChunkResult(int(record["chunk"]), int(record["start"]),
                                   int(record["stop"]), z["pred_clean"], z["pred_adv"],
                                   z["robust"], [str(b) for b in z["broken_by"]], z["x_adv"],
                                   dict(record["per_attack_robust"]), float(record["wall_s"]),
                                   record.get("adv_loss_sum"))
        except (OSError, ValueError, KeyError):
            return None


def find_result(results: str | os.PathLike[str] | None, key: str,
                log: Log | None = None) -> dict[str, Any] | None:
    """The (last) ``attack`` record of evaluation ``key`` in a results file, if there is one."""
    if results is None:
        return None
    found = None
    for r in read_log(results, log):
        if r.get("kind") == "attack" and r.get("settings_key") == key:
            found = r
    return found
