"""Import speed and peak memory: a DeepMind-layout WRN state dict → an advscale checkpoint.

Writes a random DM-Improves-AT-style checkpoint (``{'model_state_dict': {'module.0.*': ...},
'unaveraged_model_state_dict': ...}`` when ``--both``, else the averaged copy only) of
``--model`` (default WRN-70-16, 267M parameters, about 1.1 GB per copy), then imports it in a
fresh Python process (``advscale model import``'s library call) and reports the wall time and
the child's peak resident memory (``ru_maxrss``), also as a multiple of the source file's size.
The issue's bar: under 30 s and under 2x the file size.

Prints one JSON line on stdout and a summary on stderr.

    python benchmarks/import_speed.py --model wrn-70-16 --dir /tmp/import-bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from advscale.models.wrn import WideResNet

_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
from advscale.models.checkpoint import import_checkpoint
t_import = time.perf_counter()
_, meta = import_checkpoint(sys.argv[1], sys.argv[2])
done = time.perf_counter()
print(json.dumps({"wall_s": done - t, "import_s": done - t_import, "model": meta["model"],
                  "params": meta["params"],
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

_DM_PARTS = {"bn1": "batchnorm_0", "conv1": "conv_0", "bn2": "batchnorm_1", "conv2": "conv_1",
             "shortcut": "shortcut"}


def dm_state(depth: int, width: int, seed: int) -> dict[str, torch.Tensor]:
    """A random DeepMind-named state dict of WRN-depth-width (``module.0.`` prefixed)."""
    with torch.device("meta"):
        skeleton = WideResNet(depth, width).state_dict()
    n = (depth - 4) // 6
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for k, ref in skeleton.items():
        parts = k.split(".")
        if parts[0] == "blocks":
            i = int(parts[1])
            name = f"layer.{i // n}.block.{i % n}.{_DM_PARTS[parts[2]]}.{parts[3]}"
        else:
            name = {"stem": "init_conv", "bn": "batchnorm", "fc": "logits"}[parts[0]] + \
                "." + parts[1]
        if ref.dtype.is_floating_point:
            value = torch.randn(ref.shape, generator=gen) * 0.01
        else:
            value = torch.zeros(ref.shape, dtype=ref.dtype)
        out["module.0." + name] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="wrn-70-16")
    ap.add_argument("--dir", default=None, help="Where to write the files (default: a temp dir).")
    ap.add_argument("--both", action="store_true",
                    help="Also store an unaveraged copy (the source file doubles).")
    args = ap.parse_args()
    depth, width = (int(v) for v in args.model.split("-")[1:])
    work = Path(args.dir or tempfile.mkdtemp(prefix="advscale-import-"))
    work.mkdir(parents=True, exist_ok=True)
    src, out = work / "weights-best.pt", work / "imported.safetensors"
    blob = {"model_state_dict": dm_state(depth, width, 0)}
    if args.both:
        blob["unaveraged_model_state_dict"] = dm_state(depth, width, 1)
    torch.save(blob, src)
    del blob
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(out)], capture_output=True,
                         text=True, env=env, check=False)
    if res.returncode != 0:
        sys.exit(f"import failed: {res.stderr.strip().splitlines()[-1:]}")
    row = json.loads(res.stdout.strip().splitlines()[-1])
    size = src.stat().st_size
    row.update(source_bytes=size, output_bytes=out.stat().st_size,
               peak_over_source=row["peak_rss_bytes"] / size, both_copies=args.both)
    print(json.dumps(row))
    sys.stderr.write(f"{row['model']}: {row['params']:,} parameters, source {size / 1e9:.2f} GB; "
                     f"import {row['wall_s']:.1f} s wall, peak RSS "
                     f"{row['peak_rss_bytes'] / 1e9:.2f} GB = {row['peak_over_source']:.2f}x "
                     "the source file\n")
    if not args.dir:
        src.unlink()
        out.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
