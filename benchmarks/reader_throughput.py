"""Reader throughput: advscale's batched HDF5 reader vs. plain h5py and vs. an npz in RAM.

Builds an N-image file in the advscale layout (contiguous uint8) and the same data as an
uncompressed .npz, then times reading random batches (the sampler's order) with:

* ``advscale``      — ImageMixture: one sorted read per file through a memmap, order restored
* ``h5py-per-index`` — ``[dset[i] for i in batch]``, the straightforward baseline
* ``h5py-sorted``   — ``dset[np.sort(batch)]``, h5py fancy indexing in one call
* ``npz-in-ram``    — ``np.load`` of the whole array (load time reported separately), then
  numpy fancy indexing (the upper bound when the data fits in memory)

All files are freshly written, so reads come from the page cache for every method alike.
Prints one JSON line on stdout (images/s and ratios) and a table on stderr.

    python benchmarks/reader_throughput.py --n 200000 --batch 1024 --batches 50
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from advscale.data import CIFAR10_CLASSES
from advscale.data.layout import ImageFileWriter
from advscale.data.reader import ImageMixture
from advscale.data.sampler import MixtureStream


def build(directory: Path, n: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    h5 = directory / "bench.h5"
    npz = directory / "bench.npz"
    images = np.empty((n, 32, 32, 3), np.uint8)
    with ImageFileWriter(h5, n, source="benchmark", class_names=CIFAR10_CLASSES) as w:
        for s in range(0, n, 50_000):
            block = rng.integers(0, 256, (min(50_000, n - s), 32, 32, 3), dtype=np.uint8)
            images[s : s + len(block)] = block
            w.write(block, np.arange(s, s + len(block)) % 10)
    np.savez(npz, image=images, label=np.arange(n) % 10)
    return h5, npz


def rate(fn, batches: list[np.ndarray]) -> float:
    fn(batches[0])  # warm-up (opens handles)
    t = time.perf_counter()
    for b in batches:
        fn(b)
    return sum(len(b) for b in batches) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="images in the file")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--per-index-batches", type=int, default=3,
                    help="batches for the slow per-index baseline")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        h5, npz = build(Path(d), args.n)
        stream = MixtureStream([args.n], seed=0)
        batches = [stream.indices(i * args.batch, (i + 1) * args.batch)
                   for i in range(args.batches)]
        mix = ImageMixture([h5])
        results = {"advscale": rate(lambda b: mix[b], batches)}
        with h5py.File(h5) as f:
            dset = f["image"]
            results["h5py-per-index"] = rate(
                lambda b: np.stack([dset[int(i)] for i in b]), batches[: args.per_index_batches])
            results["h5py-sorted"] = rate(lambda b: dset[np.sort(b)], batches)
        t = time.perf_counter()
        with np.load(npz) as z:
            arr = z["image"]
        load_s = time.perf_counter() - t
        results["npz-in-ram"] = rate(lambda b: arr[b], batches)
    out = {
        "benchmark": "reader_throughput",
        "n": args.n,
        "batch": args.batch,
        "images_per_s": {k: round(v) for k, v in results.items()},
        "ratio_advscale_to_h5py_per_index": results["advscale"] / results["h5py-per-index"],
        "ratio_advscale_to_h5py_sorted": results["advscale"] / results["h5py-sorted"],
        "ratio_advscale_to_npz_in_ram": results["advscale"] / results["npz-in-ram"],
        "npz_load_s": load_s,
    }
    for k, v in results.items():
        print(f"{k:>16}: {v:12,.0f} images/s", file=sys.stderr)
    print(f"{'npz load':>16}: {load_s:12.2f} s for {args.n:,} images", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
