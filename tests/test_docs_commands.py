"""Every command block of README.md and docs/*.md runs, as written, on the demo's data.

The blocks run in one working folder, in the order below (README's data block first: the others
read its train.h5 and test.h5), with bash ``-e -o pipefail``. Sizes are scaled down through the
explicit table :data:`SIZES` (the commands stay as written; only numbers, and flags that shrink
the work, change). Commands that need a GPU, the internet, a file nobody has here, a server
that runs until stopped, or that are usage synopses are listed in :data:`SKIP` with the reason;
a block or skip entry that no longer matches the docs fails the test, so new blocks are noticed.

A second test re-runs the command recorded in the provenance of records of several kinds and
compares what it builds with the original (time and host aside).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_S, ROOT, cifar_tarball, make_h5

OWN_TESTS = {"study-cifar100-l2.md": "tests/test_study_docs.py (its own data and sizes)"}
"""Pages whose blocks another test runs, as written, at toy sizes."""
DOCS = [ROOT / "README.md",
        *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in OWN_TESTS)]
BIN = Path(sys.executable).parent
TINY_TRAIN = "--batch-size 64 --eval-n 32 --eval-steps 2 --pgd-steps 1 --no-progress"

SKIP = {
    "advscale energy -- torchrun --nproc_per_node=8": "needs 8 GPUs",
    "advscale data import cifar10 -o train.h5": "downloads CIFAR-10 (needs the internet)",
    "for i in 0 1 2 3; do": "one GPU per shard (CUDA_VISIBLE_DEVICES=$i)",
    "CUDA_VISIBLE_DEVICES=$i": "one GPU per shard",
    "done; wait": "the shard loop above",
    "advscale attack --merge s0.jsonl": "merges the GPU shards above",
    "advscale train ... | advscale count-flops": "`...` stands for a train command (README's "
    "pipeline runs train)",
    "advscale energy -- advscale train --out runs/e": "a full training run (the estimate and "
    "log lines of the block run)",
    "advscale fit runs/*/records.jsonl --approach 2": "Approach 2 needs a grid of >= 3 N x 3 D "
    "(examples/quickstart; tests/test_cli_fit_predict.py)",
    "advscale train ... | advscale fit": "`...` stands for a train command of such a grid",
    "advscale predict --law law.json": "reads the law.json of the grid fit above",
    "printf '{\"n\": 3.6e7": "feeds the law.json query above",
    "bin/advscale-gpu-check --device cuda": "needs a GPU",
    "bin/advscale-gpu-check --device cpu --tiny": "about a minute of CPU (tests/test_gpu_check.py)",
    "advscale records import results.csv": "needs Debenedetti et al.'s results.csv "
    "(tests/test_tables.py covers the map)",
    "git clone https://github.com/NVlabs/edm": "needs the internet",
    "advscale gen-synthetic export --pkl": "needs NVlabs' EDM pickle (internet)",
    "advscale gen-synthetic --generator edm-export": "needs the exported EDM network above",
    "advscale gen-synthetic train-denoiser": "days of GPU training (--device cuda)",
    "advscale gen-synthetic --generator builtin-unet": "needs the denoiser trained above",
    "pip install 'advscale[fid]'": "needs the internet",
    "advscale gen-synthetic fid syn.h5 --ref demo/train.h5 --save-ref-stats": "needs the "
    "Inception weights of advscale[fid] (internet)",
    "advscale gen-synthetic fid syn2.h5": "reuses the Inception statistics above",
    "torchrun --nproc_per_node=8": "needs 8 GPUs",
    "torchrun --nnodes=4": "needs 4 nodes of 8 GPUs",
    "advscale validity serve adv.h5 --rater ann": "a web server that runs until stopped "
    "(tests/test_validity_server.py)",
    "advscale validity serve adv.h5 [--port": "a usage synopsis",
    "advscale validity rate adv.h5 --command CMD": "a usage synopsis",
    "advscale validity score LABELS...": "a usage synopsis",
    "torchrun --standalone --nproc_per_node=8 -m advscale": "needs 8 GPUs",
    "srun torchrun": "needs a SLURM cluster",
    "head=$(scontrol": "needs a SLURM cluster",
    "[--rater ID": "continues a usage synopsis",
    "[--scale 8]": "continues a usage synopsis",
    "[--versions": "continues a usage synopsis",
    "[--on-bad-reply": "continues a usage synopsis",
    "[--min-raters 1]": "continues a usage synopsis",
}
"""Command prefix → why it does not run here. Lines starting with one become ``: skipped``."""

SIZES = [
    ("--samples 6144", f"--samples 640 {TINY_TRAIN}"),
    ("--results attacks.jsonl", "--n 16 --results attacks.jsonl"),
    ("advscale attack runs/wrn-28-10/ --data test.h5", "advscale attack runs/wrn-10-1/ --data "
     "test.h5 --n 16"),
    ("--attack pgd-cw --steps 40 --n 10000", "--attack pgd-cw --steps 2 --n 16"),
    ("--model wrn-28-10 --samples 5000000", f"--model wrn-10-1 --samples 128 {TINY_TRAIN}"),
    ("data/syn-edm20.h5", "demo/edm20.h5"),
    ("-o demo/gauss.safetensors", "-o demo/gauss.safetensors --fit-per-class 20 --components 4"),
    ("-n 10000", "-n 64 --batch-size 32"),
    ("--ref-n 5000", "--ref-n 200 --pca-dim 8"),
    ("../shared/data/cifar-10-python.tar.gz", "cifar-10-python.tar.gz"),
    ("--save-adv adv.h5", "--save-adv adv.h5 --attack pgd-cw --steps 2 --n 16"),
    ("advscale attack RUN/", "advscale attack runs/wrn-10-1/"),
    ("--out DIR --resume", "--out runs/wrn28-10-5m --resume"),
    ("records table sweep.jsonl", "records table runs/wrn-10-1/records.jsonl"),
]
"""(text, replacement) applied to every block: sizes scaled down, placeholders filled."""

FIRST = ("README.md", "advscale data import cifar-10-python.tar.gz --split train")
"""The block that runs first (it makes train.h5 and test.h5)."""


def logical_lines(body: str) -> list[str]:
    out, cur = [], ""
    for line in body.splitlines():
        cur += line
        if line.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        out.append(cur)
        cur = ""
    return out + ([cur] if cur else [])


def command_blocks() -> list[tuple[str, str]]:
    """(file name, body) of every shell block that runs an advscale command."""
    found = []
    for path in DOCS:
        for m in re.finditer(r"^( *)```(\w*)\n(.*?)^ *```", path.read_text(), re.S | re.M):
            lang, body = m.group(2), textwrap.dedent(m.group(3))
            if lang not in ("", "sh", "bash", "shell", "console"):
                continue
            cmds = [ln for ln in logical_lines(body) if re.search(r"(^|\s|/)advscale[ -]", ln)
                    and not ln.lstrip().startswith("advscale:")]
            if cmds:
                found.append((path.name, body))
    return found


def prepare(body: str, used: set[str]) -> str:
    lines = []
    for line in logical_lines(body):
        stripped = line.strip()
        reason = next((r for p, r in SKIP.items() if stripped.startswith(p)), None)
        if reason is not None:
            used.update(p for p in SKIP if stripped.startswith(p))
            lines.append(f": skipped: {shlex.quote(reason)}")
            continue
        for old, new in SIZES:
            line = line.replace(old, new)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _fixtures(work: Path, tar: Path) -> None:
    os.symlink(tar, work / "cifar-10-python.tar.gz")
    rng = np.random.default_rng(0)
    np.savez(work / "1m.npz", image=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             label=np.arange(40) % 10)
    from PIL import Image

    for c in ("cat", "dog"):
        (work / "images" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                work / "images" / c / f"{i}.png")
    (work / "models.txt").write_text("wrn-10-1  # a tiny WRN\n")
    (work / "nvidia-smi.csv").write_text(
        "timestamp, power.draw [W]\n" + "".join(
            f"2024/01/15 10:00:{s:02d}.000, {100 + s:.2f} W\n" for s in range(5)))
    (work / "my_vlm.py").write_text(
        "import sys\nfor line in sys.stdin:\n    print('It is an animal: cat, high', "
        "flush=True)\n")
    (work / "demo").mkdir()


@pytest.mark.slow
def test_every_command_block_runs(tmp_path):
    tar = cifar_tarball()
    if tar is None:
        pytest.skip("CIFAR-10 tarball not found (set ADVSCALE_DATA)")
    _fixtures(tmp_path, tar)
    blocks = command_blocks()
    first = [b for b in blocks if b[0] == FIRST[0] and FIRST[1] in b[1]]
    assert len(first) == 1, "README's data block moved"
    used: set[str] = set()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "80"}
    for name, body in [*first, *[b for b in blocks if b is not first[0]]]:
        script = prepare(body, used)
        res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path,
                             env=env, capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
        assert res.returncode == 0, f"{name}:\n{script}\n--- stderr:\n{res.stderr[-3000:]}"
    assert set(SKIP) == used, f"SKIP entries matching nothing: {set(SKIP) - used}"
    assert (tmp_path / "validity.jsonl").stat().st_size > 0
    assert (tmp_path / "attacks.jsonl").stat().st_size > 0


def _strip(rec: dict) -> dict:
    rec = json.loads(json.dumps(rec))
    for key in ("time_utc", "host"):
        rec.get("provenance", {}).pop(key, None)
    return rec


def _run(argv: list[str], cwd: Path) -> list[dict]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert res.returncode == 0, res.stderr
    return [json.loads(ln) for ln in res.stdout.splitlines() if ln.strip()]


def test_recorded_commands_rebuild_their_output(tmp_path):
    """data import (--split test), stitch, mix, info, predict, count-flops: re-run each record's
    provenance command in a fresh folder holding the same inputs; the record and the file it
    describes come out the same (a data.info record summarises its file: rows, classes, pixel
    statistics, attributes)."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        make_h5(d / "x.h5", 30, seed=1)
        make_h5(d / "y.h5", 20, seed=2)
    tar = cifar_tarball()
    commands = [
        ["advscale", "data", "stitch", "x.h5", "y.h5", "-o", "s.h5"],
        ["advscale", "data", "mix", "x.h5:1", "y.h5:3", "-o", "m.json"],
        ["advscale", "data", "info", "x.h5"],
        ["advscale", "predict", "--law", "bartoldson2024-approach2", "--flops", "1e22"],
        ["advscale", "count-flops", "--model", "wrn-10-1", "--samples", "5e4"],
    ]
    if tar is not None:
        os.symlink(tar, a / "c.tar.gz")
        os.symlink(tar, b / "c.tar.gz")
        commands.insert(0, ["advscale", "data", "import", "c.tar.gz", "--split", "test",
                            "-o", "t.h5"])
    for argv in commands:
        first = _run(argv, a)
        assert first, argv
        again_argv = shlex.split(first[-1]["provenance"]["command"])
        assert again_argv[0] == "advscale"
        again = _run(again_argv, b)
        assert [_strip(r) for r in again] == [_strip(r) for r in first], argv
    assert json.loads((a / "m.json").read_text()) == json.loads((b / "m.json").read_text())
    if tar is not None:  # the record rebuilt the test split, not the default train split
        assert _run(["advscale", "data", "info", "t.h5"], b)[0]["n"] == 10_000
