"""Counting speed: the linear-in-steps count vs. the direct count of a whole TRADES-k step.

Both run advscale's real training step under ``FlopCounterMode`` on the meta device, in this one
process, after a warm-up count (the first meta-device count pays one-off lazy imports). Reports
CPU seconds (``time.process_time``, robust to other load on a shared machine) and wall seconds
of each method, their ratio, and checks that both give the same FLOPs.

Prints one JSON line on stdout and a summary on stderr.

    python benchmarks/count_flops_speed.py --model wrn-94-16 --steps 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from advscale.training.flops import count_training_flops


def timed(model: str, loss: str, steps: int, method: str) -> tuple[float, float, float]:
    count_training_flops.cache_clear()
    t, c = time.perf_counter(), time.process_time()
    result = count_training_flops(model, loss, steps, method=method)
    return time.process_time() - c, time.perf_counter() - t, result.train_flops_per_sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="wrn-28-10")
    ap.add_argument("--loss", default="trades")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()

    timed("wrn-10-1", args.loss, 1, "direct")  # warm-up: lazy imports of meta kernels
    lin_cpu, lin_wall, lin_flops = timed(args.model, args.loss, args.steps, "linear")
    dir_cpu, dir_wall, dir_flops = timed(args.model, args.loss, args.steps, "direct")
    out = {
        "benchmark": "count_flops_speed",
        "model": args.model,
        "loss": args.loss,
        "pgd_steps": args.steps,
        "linear_cpu_s": lin_cpu,
        "direct_cpu_s": dir_cpu,
        "linear_wall_s": lin_wall,
        "direct_wall_s": dir_wall,
        "speedup_cpu": dir_cpu / lin_cpu,
        "same_flops": lin_flops == dir_flops,
        "train_flops_per_sample": lin_flops,
    }
    sys.stderr.write(
        f"{args.model} {args.loss}-{args.steps}: linear {lin_cpu:.1f} s CPU ({lin_wall:.1f} s wall)"
        f", direct {dir_cpu:.1f} s CPU ({dir_wall:.1f} s wall): {out['speedup_cpu']:.2f}x, "
        f"same FLOPs: {out['same_flops']}\n"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
