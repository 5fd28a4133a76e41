"""How ``fit`` scales with the number of records: 1k, 10k and 100k simulated records.

Records are simulated from the published Approach 2 law (:mod:`advscale.laws.simulate`), one
``train.eval`` record per run (the worst case: every record is a point of the fit), over a
grid of model sizes × data sizes × FIDs sized to the requested count. Each size is fitted in
this one process (``fit_law``, no bootstrap, no exclusion rule, the full grids), and reported:
CPU seconds (``time.process_time``: robust to other load on a shared machine), wall seconds,
the peak of memory allocated during the fit (``tracemalloc``: NumPy's buffers included), the
process's peak RSS so far, the objective and the fitted parameters; the ratios of time against
the smallest size are printed last. Before blocking the grid screen (advscale 0.x), 10k records
took 12–19× the CPU time of 1k and 1.8–2.5 GB.

    python benchmarks/fit_scale.py                       # 1k, 10k, 100k; approaches 2 and 3
    python benchmarks/fit_scale.py --sizes 1000 10000 --approach 2

Prints one JSON line per fit on stdout and a table on stderr.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from advscale.laws.fit import fit_law  # noqa: E402
from advscale.laws.presets import PRESETS  # noqa: E402
from advscale.laws.simulate import simulate_runs  # noqa: E402

FIDS = (1.65, 2.2, 3.3, 6.79, 14.3)


def records(n_records: int, seed: int = 0) -> list[dict]:
    """About ``n_records`` one-evaluation runs: a square-ish N × D grid at each of 5 FIDs."""
    per_fid = max(9, n_records // len(FIDS))
    side = max(3, int(math.sqrt(per_fid)))
    n_values = np.geomspace(5e6, 3e8, side)
    d_values = np.geomspace(5e6, 1e8, max(3, per_fid // side))
    return simulate_runs(PRESETS["bartoldson2024-approach2"]["params"], "approach2",
                         n_values=n_values, d_values=d_values, fids=FIDS, seed=seed)


def measure(recs: list[dict], approach: str) -> dict:
    """One fit of ``recs``: times, memory, objective and parameters."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    cpu, wall = time.process_time(), time.perf_counter()
    out = fit_law(records=recs, approach=approach, n_boot=0, exclusion=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"approach": approach, "records": len(recs), "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2), "fit_peak_mb": round(peak / 2**20, 1),
            "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "objective": out["objective"], "params": out["params"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--approach", nargs="+", default=["2", "3"])
    args = ap.parse_args(argv)
    results = []
    for approach in args.approach:
        for size in sorted(args.sizes):
            r = measure(records(size), approach)
            results.append(r)
            print(json.dumps(r), flush=True)
            print(f"approach {approach}: {r['records']:>7} records  cpu {r['cpu_s']:8.2f} s  "
                  f"wall {r['wall_s']:8.2f} s  fit peak {r['fit_peak_mb']:8.1f} MB  "
                  f"maxrss {r['maxrss_mb']:8.1f} MB", file=sys.stderr, flush=True)
    for approach in args.approach:
        rows = [r for r in results if r["approach"] == approach]
        for r in rows[1:]:
            print(f"approach {approach}: {r['records']} vs {rows[0]['records']} records: "
                  f"cpu ×{r['cpu_s'] / max(rows[0]['cpu_s'], 1e-9):.1f}, fit peak "
                  f"×{r['fit_peak_mb'] / max(rows[0]['fit_peak_mb'], 1e-9):.1f}",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
