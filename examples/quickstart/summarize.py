"""Print what the quickstart study found: the laws, N*/D* per budget, the held-out error,
and what the quality of synthetic data did.

    python summarize.py report.jsonl law1.json law2.json powerlaw.json predictions.jsonl \
        quality.jsonl law2q.json law3.json predictions-q.jsonl
"""

from __future__ import annotations

import sys

from advscale.records import read_records


def last(path: str) -> dict:
    return list(read_records(path))[-1]


def quality(quality_file: str, law2q: str, law3: str, predictions_q: str) -> None:
    """The quality arm: each synthetic file's measured quality, the laws across qualities."""
    qs = list(read_records(quality_file))
    metric = qs[0]["quality_metric"] if qs else "fid"
    print(f"  synthetic data ({metric}, "
          + ("comparable to published FIDs" if qs and qs[0].get("comparable_to_published")
             else "a proxy: compare only values of the same name") + "):")
    for q in qs:
        print(f"    {q['path'].rsplit('/', 1)[-1]}: {q['quality_metric']} = "
              f"{q['quality_value']:.2f}")
    for name, path in (("Approach 2 across qualities", law2q), ("Approach 3, all runs", law3)):
        law = last(path)
        p = law["params"]
        print(f"  {name}: {law['data']['n_runs']} runs, R² {law.get('r2', float('nan')):.3f}, "
              + ", ".join(f"{k} {v:.3g}" for k, v in p.items()))
    rows: dict[float, list] = {}
    for p in read_records(predictions_q):
        rows.setdefault(p["query"].get("fid") or 0.0, []).append(p)
    for fid, preds in sorted(rows.items()):
        cells = ", ".join(f"{p['query']['flops']:.0e}: L* {p['loss_opt']:.3f}" for p in preds)
        print(f"    Approach 3 at {metric} {fid:.2f}: {cells}")


def main(report: str, law1: str, law2: str, power: str, predictions: str,
         quality_file: str | None = None, law2q: str | None = None, law3: str | None = None,
         predictions_q: str | None = None) -> None:
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
    if quality_file and law2q and law3 and predictions_q:
        quality(quality_file, law2q, law3, predictions_q)


if __name__ == "__main__":
    main(*sys.argv[1:10])
