"""Group records into runs for plotting: learning curves, final points, attack results."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Run:
    """One training run: its eval points (in order of samples seen) and attack results."""

    run_id: str
    model: str
    params: int
    fid: float | None
    points: list[dict[str, Any]] = field(default_factory=list)
    attacks: list[dict[str, Any]] = field(default_factory=list)
    energy: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        return self.points[-1] if self.points else {}

    def attack_acc(self, attack: str) -> float | None:
        accs = [a.get("robust_acc") for a in self.attacks if a.get("attack") == attack]
        return accs[-1] if accs else None


def group_runs(records: Iterable[dict[str, Any]]) -> tuple[list[Run], dict[str, list[dict]]]:
    """Runs from ``train.eval``/``attack``/``energy`` records; other kinds returned by kind."""
    runs: dict[str, Run] = {}
    others: dict[str, list[dict]] = defaultdict(list)
    pending_attacks: list[dict] = []
    for r in records:
        kind = r.get("kind")
        if kind == "train.eval" and r.get("run_id"):
            run = runs.get(r["run_id"])
            if run is None:
                run = runs[r["run_id"]] = Run(
                    r["run_id"], str(r.get("model")), int(r.get("params") or 0), r.get("fid")
                )
            run.points.append(r)
        elif kind == "attack":
            pending_attacks.append(r)
        else:
            others[str(kind)].append(r)
    for a in pending_attacks:
        run = runs.get(a.get("run_id") or "")
        if run is not None:
            run.attacks.append(a)
        else:
            others["attack"].append(a)
    for e in others.get("energy", []):
        rid = (e.get("run_id") or e.get("provenance", {}).get("config", {}).get("run_id"))
        if rid in runs:
            runs[rid].energy.append(e)
    for run in runs.values():
        run.points.sort(key=lambda p: p.get("samples_seen") or 0)
    return sorted(runs.values(), key=lambda r: (r.params, r.run_id)), dict(others)
