"""How honest are the run-bootstrap intervals? A small simulation study.

Simulates ``--datasets`` data sets from a published law (the Approach 2 or 3 preset; 7 model
sizes × 5 data sizes × 4–5 FIDs, log-normal noise ``--noise``), fits each with advscale's
default procedure and a ``--bootstrap``-replicate run bootstrap, and reports per parameter:

* the sampling standard deviation of the estimates across data sets (the truth about the
  estimator's spread),
* the mean bootstrap standard deviation (what the bootstrap believes),
* how often the 95% percentile interval covered the true value.

It is the evidence behind docs/laws.md's "How far to trust the intervals". Minutes of CPU.
Prints one JSON line on stdout and a table on stderr.

    python benchmarks/bootstrap_coverage.py --approach 3 --datasets 24 --bootstrap 200
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from advscale.laws.fit import fit_law
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs

DESIGNS = {
    "2": ("bartoldson2024-approach2", [5e6, 1e7, 2e7, 5e7, 1e8], [0.0, 1.76, 5.0, 10.0]),
    "3": ("bartoldson2024-approach3", [5e6, 1e7, 3e7, 1e8, 3e8], [1.65, 2.5, 5.0, 10.0, 35.0]),
}
NS = [6e6, 1.2e7, 2.5e7, 5e7, 1e8, 2e8, 3.2e8]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--approach", choices=sorted(DESIGNS), default="3")
    ap.add_argument("--datasets", type=int, default=24)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.002)
    args = ap.parse_args()
    name, ds, fids = DESIGNS[args.approach]
    truth = PRESETS[name]["params"]
    form = PRESETS[name]["form"]
    keys = list(truth)
    est, bsd, covered = [], [], []
    for seed in range(args.datasets):
        recs = simulate_runs(truth, form=form, n_values=NS, d_values=ds, fids=fids,
                             noise=args.noise, seed=seed)
        out = fit_law(records=recs, approach=args.approach, exclusion=False,
                      n_boot=args.bootstrap, seed=seed)
        est.append([out["params"][k] for k in keys])
        samples = np.array(out["bootstrap"]["samples"], dtype=float)
        names = out["bootstrap"]["names"]
        bsd.append([np.nanstd(samples[:, names.index(k)]) for k in keys])
        covered.append([out["bootstrap"]["intervals"][k][0] <= truth[k]
                        <= out["bootstrap"]["intervals"][k][1] for k in keys])
        sys.stderr.write(f"data set {seed + 1}/{args.datasets}\r")
    est, bsd, covered = np.array(est), np.array(bsd), np.array(covered)
    rows = {k: {"truth": truth[k], "sampling_sd": float(est[:, i].std(ddof=1)),
                "bootstrap_sd": float(bsd[:, i].mean()),
                "coverage": float(covered[:, i].mean()),
                "mean_estimate": float(est[:, i].mean())} for i, k in enumerate(keys)}
    print(json.dumps({"approach": args.approach, "datasets": args.datasets,
                      "bootstrap": args.bootstrap, "noise": args.noise, "params": rows}))
    sys.stderr.write(f"\napproach {args.approach}, {args.datasets} data sets, "
                     f"{args.bootstrap} replicates, noise {args.noise}\n")
    sys.stderr.write(f"{'param':>8} {'truth':>10} {'sampling sd':>12} {'bootstrap sd':>13} "
                     f"{'ratio':>6} {'95% coverage':>13}\n")
    for k, r in rows.items():
        sys.stderr.write(f"{k:>8} {r['truth']:>10.4g} {r['sampling_sd']:>12.4g} "
                         f"{r['bootstrap_sd']:>13.4g} {r['bootstrap_sd'] / r['sampling_sd']:>6.2f}"
                         f" {r['coverage']:>13.0%}\n")


if __name__ == "__main__":
    main()
