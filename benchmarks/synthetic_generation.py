"""gen-synthetic throughput: the builtin-gaussian generator, batched vs. a small-batch baseline.

Fits the class-conditional Gaussian (``--components`` per class) to ``--fit-n`` CIFAR-10-shaped
images (CIFAR-10 itself when ``$ADVSCALE_DATA`` or ../shared/data has the tarball, else random
pixels: the cost does not depend on the pixels), then times ``advscale.synthetic.jobs.generate``
writing ``--n`` images at each of ``--steps`` with the job batch ``--batch`` and with the
baseline batch ``--baseline-batch`` in the same run, and reports images/s, their ratio, the
FLOPs per image and the projected time for ``--project`` images (e.g. the demo's).

Prints one JSON line on stdout and a table on stderr.

    python benchmarks/synthetic_generation.py --n 1000 --steps 5 20 --batch 500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from advscale.data import CIFAR10_CLASSES
from advscale.synthetic.builtin_gaussian import fit_gaussian_generator
from advscale.synthetic.jobs import generate


def training_images(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    for base in (os.environ.get("ADVSCALE_DATA"), Path(__file__).parents[2] / "shared/data"):
        tar = Path(base) / "cifar-10-python.tar.gz" if base else None
        if tar is not None and tar.is_file():
            from advscale.data.importers import read_cifar10

            images, labels = read_cifar10(tar, "train")
            return images[:n], labels[:n], "cifar10"
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10, "random")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="images per timed run")
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--baseline-batch", type=int, default=25)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--fit-n", type=int, default=10_000)
    ap.add_argument("--project", type=int, default=50_000)
    args = ap.parse_args()

    images, labels, kind = training_images(args.fit_n)
    t = time.perf_counter()
    gen = fit_gaussian_generator(images, labels, CIFAR10_CLASSES, components=args.components)
    fit_s = time.perf_counter() - t
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for steps in args.steps:
            row = {"steps": steps, "nfe": 2 * steps - 1}
            for name, bs in (("batched", args.batch), ("baseline", args.baseline_batch)):
                t = time.perf_counter()
                s = generate(gen, Path(d) / f"{name}-{steps}.h5", num=args.n, steps=steps,
                             batch_size=bs)
                row[f"{name}_images_per_s"] = args.n / (time.perf_counter() - t)
            row["speedup"] = row["batched_images_per_s"] / row["baseline_images_per_s"]
            row["flops_per_image"] = s["flops_per_image"]
            row["projected_s"] = args.project / row["batched_images_per_s"]
            rows.append(row)
            print(f"steps {steps:3d} (NFE {row['nfe']:3d}): batch {args.batch} "
                  f"{row['batched_images_per_s']:8.1f} img/s, batch {args.baseline_batch} "
                  f"{row['baseline_images_per_s']:8.1f} img/s, x{row['speedup']:.2f}; "
                  f"{args.project:,} images in {row['projected_s'] / 60:.1f} min",
                  file=sys.stderr)
    print(json.dumps({"benchmark": "synthetic_generation", "data": kind, "fit_n": args.fit_n,
                      "components": args.components, "fit_s": fit_s, "n": args.n,
                      "cpu_threads": __import__("torch").get_num_threads(), "runs": rows}))


if __name__ == "__main__":
    main()
