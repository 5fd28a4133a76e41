"""How well a fitted law predicts runs it was not fitted on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.report.laws import loss_function
from advscale.report.runs import group_runs


def held_out_errors(
    records: Sequence[dict[str, Any]],
    laws: Sequence[dict[str, Any]],
    run_ids: Sequence[str],
) -> list[dict[str, Any]]:
    """Actual vs predicted final loss of each held-out run under the first Approach 2/3 law.

    Returns one dict per run: run_id, model, params, samples_seen, fid, target, actual,
    predicted, rel_error ((predicted − actual) / actual).
    """
    if not run_ids:
        return []
    law = next((x for x in laws if loss_function(x) is not None), None)
    if law is None:
        raise AdvscaleError("held_out needs an Approach 2 or 3 law (laws)",
                            field="held_out,laws")
    fn = loss_function(law)
    target = str(law.get("target", "adv_loss"))
    runs = {r.run_id: r for r in group_runs(records)[0]}
    out = []
    for rid in run_ids:
        run = runs.get(rid)
        if run is None or run.final.get(target) is None:
            raise AdvscaleError(f"held-out run {rid!r} has no train.eval record with {target}")
        d = float(run.final["samples_seen"])
        pred = float(fn(np.array([run.params], float), np.array([d]),
                        np.array([run.fid or 0.0]))[0])
        actual = float(run.final[target])
        out.append({"run_id": rid, "model": run.model, "params": run.params,
                    "samples_seen": int(d), "fid": run.fid, "target": target,
                    "actual": actual, "predicted": pred, "rel_error": (pred - actual) / actual})
    return out
