"""The report's view of the runs: the records → runs table of :mod:`advscale.records.runs`.

``advscale report`` and ``advscale fit`` group records with the same rule (run_id; an energy
record without one joins the run of the last train.eval record before it in its file), so a
figure and a fit never attach an energy or attack record to different runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from advscale.records.runs import Run, Tagged, build_runs

__all__ = ["Run", "group_runs"]


def group_runs(records: Iterable[dict[str, Any] | Tagged]
               ) -> tuple[list[Run], dict[str, list[dict[str, Any]]]]:
    """Runs (by model size, then run id) and every record not joined to one, by kind.

    ``records`` are dicts or :class:`~advscale.records.runs.Tagged` records (those carry their
    file, which the energy rule needs when several files are read; plain dicts count as one).
    """
    table = build_runs(records)
    return table.sorted_runs(), table.unjoined
