"""Simulated ``train.eval`` records from a known law: for checking a fit recovers its truth.

:func:`simulate_runs` makes one run per (N, D, FID) combination, each with ``curve_points``
evaluations along its training (samples seen D·k/curve_points), the adversarial loss given by
the law times log-normal noise, and the other contract fields filled plausibly (FLOPs as
``k·N·D``, ``robust_acc`` from the paper's loss→accuracy line). Used by the tests, the
benchmark and docs/laws.md's examples; never by a real fit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.laws.approach import get_approach
from advscale.laws.presets import PAPER_ACCURACY_MAP
from advscale.records import make_record

_PROV = {"advscale_version": "sim", "command": "advscale.laws.simulate", "config": {},
         "seed": None, "time_utc": "2026-01-01T00:00:00Z", "host": "sim"}


def simulate_runs(
    params: dict[str, float],
    form: str = "approach2",
    n_values: Iterable[float] = (6e6, 1.2e7, 2.5e7, 5e7, 1e8, 2e8),
    d_values: Iterable[float] = (5e6, 1e7, 2e7, 5e7, 1e8),
    fids: Iterable[float | None] = (1.76,),
    noise: float = 0.005,
    curve_points: int = 1,
    seed: int = 0,
    k: float = PAPER_FLOPS_PER_PARAM_SAMPLE,
    curve_start: float | None = None,
    fid_metric: str = "fid",
) -> list[dict[str, Any]]:
    """``train.eval`` records (dicts) for every (N, D, FID) run; ``noise`` is log-normal σ.

    Evaluations are evenly spaced in samples (D/k, 2D/k, ..., D), or log-spaced from
    ``curve_start``·D to D when ``curve_start`` is given. ``fid_metric`` names how the
    synthetic sources' FIDs were measured (``fid``: the published protocol).
    """
    rng = np.random.default_rng(seed)
    predict = get_approach(form, "form").predict
    out = []
    for fid in fids:
        for n in n_values:
            for d in d_values:
                rid = f"sim-n{n:.3g}-d{d:.3g}-fid{fid}"
                fracs = _fractions(curve_points, curve_start)
                for j, frac in enumerate(fracs, start=1):
                    seen = int(round(d * frac))
                    loss = float(predict(params, n, seen, fid or 0.0)) * float(
                        np.exp(rng.normal(0.0, noise)))
                    payload = _payload(rid, n, d, seen, fid, loss, k, fid_metric)
                    payload["final"] = j == curve_points
                    out.append(make_record("train.eval", payload, prov=_PROV))
    return out


def _fractions(curve_points: int, curve_start: float | None) -> np.ndarray:
    """Where along D each evaluation falls: evenly spaced, or log-spaced from curve_start."""
    if curve_start is None:
        return np.arange(1, curve_points + 1) / curve_points
    return np.geomspace(curve_start, 1.0, curve_points)


def _payload(rid: str, n: float, d: float, seen: int, fid: float | None, loss: float,
             k: float, fid_metric: str) -> dict[str, Any]:
    """One ``train.eval`` payload with plausible recipe fields around the simulated loss."""
    m = PAPER_ACCURACY_MAP
    acc = float(np.clip(m["intercept"] + m["slope"] * loss, 0.0, 1.0))
    return {
        "run_id": rid, "model": f"sim-{int(n)}", "activation": "silu",
        "params": int(n), "loss": "trades", "beta": 5.0, "pgd_steps": 10,
        "eps": 8 / 255, "ema_decay": 0.995, "batch_size": 512, "lr": 0.2,
        "step": seen // 512, "samples_seen": seen, "samples_unique": min(int(d), seen),
        "data": [{"path": "sim.h5", "source": "synthetic", "weight": 1, "n": int(d),
                  "fid": fid, "fid_metric": None if fid is None else fid_metric}],
        "fid": fid, "train_flops": k * n * seen, "train_flops_per_sample": k * n,
        "wall_s": 1.0, "train_loss": loss, "eval_n": 10000, "eval_attack": "pgd-cw-40",
        "clean_acc": min(1.0, acc + 0.2), "robust_acc": acc, "adv_loss": loss,
    }
