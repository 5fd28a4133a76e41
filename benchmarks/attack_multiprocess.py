"""Multi-process evaluation: ``advscale attack`` in 1 process vs 2 gloo processes (torchrun, CPU).

Both runs attack the same images of a random-init WRN-10-1 (tiny files this benchmark writes)
with the same settings, one torch thread per process, in the same invocation; the result is
the images/s of each, end to end (process start-up included) and in the attack phase alone
(images / the longest rank's summed chunk seconds, read from the ranks' resume states), their
ratios, and a check that the two final records agree (accuracies, per-attack counts, settings
key). On a machine with at
least two free cores the ratio approaches 2 as the attack dominates start-up; on a loaded
machine it shows the cores actually free. The same code path runs NCCL with one GPU per rank.

Prints one JSON line on stdout and a summary on stderr.

    python benchmarks/attack_multiprocess.py --n 64 --steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from startup import make_tiny_files

DROP = ("provenance", "wall_s")


def run(cmd: list[str]) -> tuple[dict, float]:
    """The one final record ``cmd`` prints and its wall seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"attack_multiprocess: {' '.join(cmd[:6])} ... failed:\n{p.stderr[-2000:]}")
    recs = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return recs[-1], wall


def attack_seconds(states: list[Path]) -> float:
    """The attack phase: the largest over ranks of the summed chunk seconds of its state."""
    def total(p: Path) -> float:
        recs = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        return sum(float(r["wall_s"]) for r in recs if r.get("kind") == "attack.chunk")
    return max(total(p) for p in states)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="Images (the tiny test file holds 64).")
    ap.add_argument("--steps", type=int, default=10, help="APGD-CE iterations.")
    ap.add_argument("--chunk-size", type=int, default=8, help="Images per chunk.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = make_tiny_files(d, test_n=max(16, args.n))
        attack = ["attack", str(files["ckpt"]), "--data", str(files["test"]), "--attack",
                  "apgd-ce", "--steps", str(args.steps), "--eps", "8/255", "--n", str(args.n),
                  "--chunk-size", str(args.chunk_size), "--batch-size", str(args.chunk_size),
                  "--device", "cpu", "-q"]
        one, wall1 = run([sys.executable, "-m", "advscale", *attack, "--state",
                          str(d / "one.state")])
        two, wall2 = run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "advscale", "--", *attack, "--state",
                          str(d / "two.state")])
        att1 = attack_seconds([d / "one.state"])
        att2 = attack_seconds([d / f"two.state.rank{r}-of-2" for r in (0, 1)])
    same = ({k: v for k, v in one.items() if k not in DROP}
            == {k: v for k, v in two.items() if k not in DROP})
    out = {"benchmark": "attack_multiprocess", "n": args.n, "steps": args.steps,
           "chunk_size": args.chunk_size, "cpus": os.cpu_count(),
           "one_process": {"wall_s": wall1, "images_per_s": args.n / wall1,
                           "attack_s": att1, "attack_images_per_s": args.n / att1},
           "two_processes": {"wall_s": wall2, "images_per_s": args.n / wall2,
                             "attack_s": att2, "attack_images_per_s": args.n / att2},
           "speedup": wall1 / wall2, "attack_speedup": att1 / att2, "records_equal": same}
    print(f"1 process   {args.n / wall1:.2f} img/s end to end ({wall1:.1f} s), attack phase "
          f"{args.n / att1:.2f} img/s ({att1:.1f} s)\n"
          f"2 processes {args.n / wall2:.2f} img/s end to end ({wall2:.1f} s), attack phase "
          f"{args.n / att2:.2f} img/s ({att2:.1f} s)\n"
          f"speed-up x{wall1 / wall2:.2f} end to end, x{att1 / att2:.2f} attack phase; records "
          f"equal: {same}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
