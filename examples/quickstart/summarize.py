"""Print what the quickstart study found: the laws, N*/D* per budget, the held-out error.

    python summarize.py report.jsonl law1.json law2.json powerlaw.json predictions.jsonl
"""

from __future__ import annotations

import sys

from advscale.records import read_records


def last(path: str) -> dict:
    return list(read_records(path))[-1]


def main(report: str, law1: str, law2: str, power: str, predictions: str) -> None:
    rep, a1, a2, pl = last(report), last(law1), last(law2), last(power)
    p2, a, b = a2["params"], a2["derived"]["a"], a2["derived"]["b"]
    print("advscale quickstart: what the study found")
    print(f"  runs: {a2['data']['n_runs']} fitted + held out; report: {rep['report']}")
    print(f"  Approach 2: L = {p2['A']:.3g}/N^{p2['alpha']:.3g} + {p2['B']:.3g}/D^{p2['beta']:.3g}"
          f" + {p2['E']:.3g}  (R² {a2.get('r2', float('nan')):.3f}; N* ∝ F^a, a = {a:.2f}, "
          f"D* ∝ F^b, b = {b:.2f})")
    if a2.get("at_bound"):
        print(f"    caution: {', '.join(a2['at_bound'])} at the edge of the search box; this law "
              f"is degenerate at this scale, so read N*/D* from the envelope below")
    elif min(a, b) < 0.05:
        axis = "D" if b < a else "N"
        print(f"    caution: the {axis} term has all but vanished at these sizes, so this law "
              f"sends all extra compute to one axis; read N*/D* from the envelope below")
    d1 = a1["params"]
    print(f"  Approach 1 (envelope): N* ∝ F^{d1['a']:.2f}, D* ∝ F^{d1['b']:.2f}, "
          f"L* ∝ F^{d1['s']:.3f}")
    pp = pl["params"]
    print(f"  power law: robust accuracy ≈ {pp['C']:.3g} · FLOPs^{pp['alpha']:.3g} "
          f"(R² {pl.get('r2', float('nan')):.2f})")
    for p in read_records(predictions):
        acc, q = p.get("accuracy_opt"), p.get("quantity", "loss")
        print(f"  budget {p['query']['flops']:.0e} FLOPs: N* = {p['n_opt']:,.0f} params, "
              f"D* = {p['d_opt']:,.0f} samples, {q}* = {p[q + '_opt']:.3f}"
              + (f" (accuracy ≈ {100 * acc:.1f}%)" if acc is not None else ""))
    for e in rep.get("held_out", []):
        print(f"  held-out run {e['run_id']}: actual {e['target']} {e['actual']:.4f}, predicted "
              f"{e['predicted']:.4f}, error {100 * e['rel_error']:+.1f}%")


if __name__ == "__main__":
    main(*sys.argv[1:6])
