"""Start-up cost of the quick commands: CPU seconds of ``advscale fit``/``predict`` queries,
and of a short ``train`` and a short ``attack`` process.

Runs each command ``--repeat`` times in a fresh process and reports the median CPU time (user +
system, of the child) next to a baseline run alongside, as a ratio: ``python -c "import
advscale"`` for the quick commands, ``python -c "import torch"`` for ``train``/``attack`` (on
tiny files this benchmark writes: a WRN-10-1 checkpoint, 64 training and 16 test images). The
``imports`` line (``import torch`` plus every module ``advscale attack`` loads before it starts
work) gives the share of a short run that is imports. The issue's bar: a closed-form preset
query (``predict --law bartoldson2024-approach2 --flops 1e25``) and ``--help`` under 0.5 CPU-s.

Prints one JSON line on stdout and a summary on stderr.

    python benchmarks/startup.py --repeat 5
    python benchmarks/startup.py --repeat 3 --torch    # adds the train/attack processes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
TORCH_BASE = "import torch"
IMPORTS = "imports (attack)"


def make_tiny_files(d: Path, test_n: int = 16) -> dict[str, Path]:
    """A random-init WRN-10-1 checkpoint, 64 training and ``test_n`` test images (HDF5)."""
    import numpy as np
    import torch

    from advscale.data import CIFAR10_CLASSES
    from advscale.data.layout import ImageFileWriter
    from advscale.models import create_model
    from advscale.models.checkpoint import save_model_checkpoint

    torch.manual_seed(0)
    out = {"ckpt": d / "last.safetensors", "train": d / "train.h5", "test": d / "test.h5"}
    save_model_checkpoint(out["ckpt"], create_model("wrn-10-1").eval(),
                          {"model": "wrn-10-1", "activation": "silu", "num_classes": 10,
                           "run_id": "startup", "samples_seen": 0})
    rng = np.random.default_rng(0)
    for key, n in (("train", 64), ("test", test_n)):
        with ImageFileWriter(out[key], n, source=key, class_names=CIFAR10_CLASSES) as w:
            w.write(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10)
    return out


def torch_commands(files: dict[str, Path], d: Path) -> dict[str, list[str]]:
    """The short train and attack processes and their baselines (fresh run dir per repeat)."""
    py = sys.executable
    return {
        TORCH_BASE: [py, "-c", "import torch"],
        IMPORTS: [py, "-c", "import torch, advscale.cli.main, advscale.attacks.evaluate"],
        "train (short)": [*ADVSCALE, "train", "--out", str(d / "run-{i}"), "--data",
                          str(files["train"]), "--eval-data", str(files["test"]), "--model",
                          "wrn-10-1", "--samples", "32", "--batch-size", "32", "--pgd-steps",
                          "1", "--eval-n", "16", "--eval-steps", "1", "--eval-every", "0",
                          "--no-progress"],
        # the finished run again: set-up only (model, data, FLOPs from the state, not recounted)
        "train --resume (short)": [*ADVSCALE, "train", "--out", str(d / "run-{i}"), "--resume"],
        "attack (short)": [*ADVSCALE, "attack", str(files["ckpt"]), "--data", str(files["test"]),
                           "--attack", "pgd-cw", "--steps", "2", "--n", "16", "--device", "cpu",
                           "-q"],
    }


def cpu_of(cmd: list[str]) -> tuple[float, float]:
    """(child CPU seconds, wall seconds) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(commands: dict[str, list[str]], repeat: int) -> dict[str, dict[str, float]]:
    """Median child CPU and wall seconds of each command (``{i}`` in an argument: the repeat)."""
    results = {}
    for name, cmd in commands.items():
        runs = [cpu_of([a.replace("{i}", str(i)) for a in cmd]) for i in range(repeat)]
        results[name] = {"cpu_s": statistics.median(c for c, _ in runs),
                         "wall_s": statistics.median(w for _, w in runs)}
    return results


def torch_processes(repeat: int) -> dict[str, dict[str, float]]:
    """The short train/attack processes as ratios against ``import torch`` run alongside."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        res = measure(torch_commands(make_tiny_files(d), d), repeat)
    base = res[TORCH_BASE]["cpu_s"]
    for name, r in res.items():
        r["vs_import_torch"] = r["cpu_s"] / base if base > 0 else None
        if name in ("train (short)", "train --resume (short)", "attack (short)"):
            r["imports_share"] = res[IMPORTS]["cpu_s"] / r["cpu_s"] if r["cpu_s"] else None
        print(f"{name:34s} {r['cpu_s']:.3f} CPU-s ({r['vs_import_torch']:.2f}x import torch), "
              f"wall {r['wall_s']:.3f} s" + (f", imports {r['imports_share']:.0%}"
                                            if "imports_share" in r else ""), file=sys.stderr)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="Runs per command (median).")
    ap.add_argument("--torch", action="store_true",
                    help="Also time a short train and a short attack process.")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # children: one thread, comparable CPU-s
    results = measure(COMMANDS, args.repeat)
    base = results["import advscale"]["cpu_s"]
    for name, r in results.items():
        r["vs_import"] = r["cpu_s"] / base if base > 0 else None
        r["under_bar"] = r["cpu_s"] < BAR_S
        print(f"{name:34s} {r['cpu_s']:.3f} CPU-s ({r['vs_import']:.1f}x import advscale), "
              f"wall {r['wall_s']:.3f} s{'' if r['under_bar'] else '  OVER THE BAR'}",
              file=sys.stderr)
    ok = all(r["under_bar"] for n, r in results.items() if n != "import advscale")
    heavy = torch_processes(args.repeat) if args.torch else None
    print(json.dumps({"benchmark": "startup", "bar_cpu_s": BAR_S, "all_under_bar": ok,
                      "repeat": args.repeat, "results": results, "processes": heavy}))


if __name__ == "__main__":
    main()
