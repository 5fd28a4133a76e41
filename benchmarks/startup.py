"""Start-up cost of the quick commands: CPU seconds of ``advscale fit``/``predict`` queries.

Runs each command ``--repeat`` times in a fresh process and reports the median CPU time (user +
system, of the child) next to the baseline ``python -c "import advscale"`` run alongside, as a
ratio. The issue's bar: a closed-form preset query (``predict --law bartoldson2024-approach2
--flops 1e25``) and ``--help`` under 0.5 CPU-s.

Prints one JSON line on stdout and a summary on stderr.

    python benchmarks/startup.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

ADVSCALE = [sys.executable, "-m", "advscale"]
COMMANDS = {
    "import advscale": [sys.executable, "-c", "import advscale"],
    "advscale --help": [*ADVSCALE, "--help"],
    "fit --help": [*ADVSCALE, "fit", "--help"],
    "predict approach2 --flops": [*ADVSCALE, "predict", "--law", "bartoldson2024-approach2",
                                  "--flops", "1e25"],
    "predict approach2 --accuracy": [*ADVSCALE, "predict", "--law", "bartoldson2024-approach2",
                                     "--flops", "1e25", "--fid", "1.76", "--accuracy"],
    "predict approach2 --n --d": [*ADVSCALE, "predict", "--law", "bartoldson2024-approach2",
                                  "--n", "3.6e7", "--d", "5e7", "--fid", "1.76"],
    "predict debenedetti2024 --flops": [*ADVSCALE, "predict", "--law", "debenedetti2024",
                                        "--flops", "1e21"],
}
BAR_S = 0.5
"""CPU seconds a closed-form preset query may take."""


def cpu_of(cmd: list[str]) -> tuple[float, float]:
    """(child CPU seconds, wall seconds) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="Runs per command (median).")
    args = ap.parse_args()
    results = {}
    for name, cmd in COMMANDS.items():
        runs = [cpu_of(cmd) for _ in range(args.repeat)]
        results[name] = {"cpu_s": statistics.median(c for c, _ in runs),
                         "wall_s": statistics.median(w for _, w in runs)}
    base = results["import advscale"]["cpu_s"]
    for name, r in results.items():
        r["vs_import"] = r["cpu_s"] / base if base > 0 else None
        r["under_bar"] = r["cpu_s"] < BAR_S
        print(f"{name:34s} {r['cpu_s']:.3f} CPU-s ({r['vs_import']:.1f}x import advscale), "
              f"wall {r['wall_s']:.3f} s{'' if r['under_bar'] else '  OVER THE BAR'}",
              file=sys.stderr)
    ok = all(r["under_bar"] for n, r in results.items() if n != "import advscale")
    print(json.dumps({"benchmark": "startup", "bar_cpu_s": BAR_S, "all_under_bar": ok,
                      "repeat": args.repeat, "results": results}))


if __name__ == "__main__":
    main()
