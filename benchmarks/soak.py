"""Soak advscale under SIGKILL: kill each resumable command at random moments, then compare.

For each of ``train --resume``, ``attack --state/--results/--save-adv``, ``gen-synthetic
--resume`` and ``data import``, the script makes a small job, runs it once uninterrupted (the
reference), then runs it again killing it with SIGKILL at a random moment ``--kills`` times
(re-running after each kill, as a cron job or a scheduler would), and lets the last run finish.
It then checks, per command:

* **differences**: the final outputs equal the reference (records without wall times and
  provenance, tensors, image rows and labels); a resumed ``train`` printed each record on stdout
  exactly once over all its runs;
* **corrupted files**: every final output opens and parses (HDF5, safetensors, JSONL with no
  torn or malformed line);
* **stale temp files**: nothing like ``.NAME.PID.XXXX*.tmp`` is left anywhere in the job folder.

Full form (the closing note of issue 18; about 5-10 minutes on 2 CPU cores)::

    python benchmarks/soak.py --kills 20

Reduced form (the slow test ``tests/test_reliability.py::test_soak_reduced``)::

    python benchmarks/soak.py --kills 2 --commands train,attack,gen-synthetic,data-import

Prints one JSON line: per command the kills, differences, corrupted files and stale temps, and
the totals; exits 1 when any of them is non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from advscale.core.jsonl import read_log
from advscale.core.stfile import load_tensors
from advscale.data import CIFAR10_CLASSES
from advscale.data.layout import ImageFileWriter
from advscale.records import parse_line

COMMANDS = ("train", "attack", "gen-synthetic", "data-import")
VOLATILE = {"provenance", "wall_s", "time_utc", "host", "train_wall_s", "eval_wall_s",
            "images_per_s", "samples_per_s", "throughput", "command"}
TEMP_RE = re.compile(r"^\..+\.\d+\.[a-z0-9_]+\..*tmp.*$|.*\.tmp$")
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def advscale(*args: str) -> list[str]:
    return [sys.executable, "-m", "advscale", *args]


def make_images(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    with ImageFileWriter(path, n, source="soak", class_names=CIFAR10_CLASSES) as w:
        w.write(images, labels)
    return path


class Job:
    """One command's job: how to run it (first and later runs) and read its final outputs."""

    def __init__(self, name: str, run_dir: Path, first: list[str], again: list[str],
                 outputs: Callable[[Path], dict], stdout_records: bool = False) -> None:
        self.name, self.dir, self.first, self.again = name, run_dir, first, again
        self.outputs, self.stdout_records = outputs, stdout_records


def _strip(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in VOLATILE}


def _jsonl(path: Path) -> list[dict]:
    return [_strip(r) for r in read_log(path, parse_line).items]


def _h5_rows(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        out = {k: np.asarray(f[k][()]).tobytes() for k in f.keys()}
        out["attrs"] = {k: str(v) for k, v in f.attrs.items() if k not in ("origin",)}
    return out


def _tensors(path: Path) -> dict:
    tensors, meta = load_tensors(path)
    return {"tensors": {k: v.numpy().tobytes() for k, v in tensors.items()},
            "meta": {k: v for k, v in meta.items() if k not in VOLATILE}}


def jobs(base: Path, data: dict[str, Path], ckpt: Path | None, scale: float) -> dict[str, Job]:
    """The four jobs, in folders under ``base`` (``scale`` grows them for longer kill windows)."""
    n_train = int(256 * scale)
    train_args = ["train", "--data", str(data["train"]), "--eval-data", str(data["test"]),
                  "--model", "wrn-10-1", "--samples", str(n_train), "--batch-size", "16",
                  "--lr", "0.1", "--pgd-steps", "1", "--eval-every", "32",
                  "--checkpoint-every", "16", "--eval-n", "16", "--eval-steps", "1",
                  "--seed", "5", "--run-id", "soak", "--no-progress", "--device", "cpu"]
    out = {}
    d = base / "train"
    out["train"] = Job("train", d, advscale(*train_args, "--out", str(d / "run")),
                       advscale(*train_args, "--out", str(d / "run"), "--resume"),
                       lambda d: {"records": _jsonl(d / "run" / "records.jsonl"),
                                  "last": _tensors(d / "run" / "last.safetensors")},
                       stdout_records=True)
    if ckpt is not None:
        d = base / "attack"
        n = str(int(64 * scale))
        a = advscale("attack", str(ckpt), "--data", str(data["test"]), "--attack", "pgd-cw",
                     "--eps", "1/255", "--steps", "20", "--n", n, "--chunk-size", "4",
                     "--batch-size", "4", "--device", "cpu", "--state", str(d / "st.jsonl"),
                     "--results", str(d / "res.jsonl"), "--save-adv", str(d / "adv.h5"))
        out["attack"] = Job("attack", d, a, a,
                            lambda d: {"results": _jsonl(d / "res.jsonl"),
                                       "adv": _h5_rows(d / "adv.h5")})
    d = base / "gen-synthetic"
    g = ["gen-synthetic", "--data", str(data["train"]), "--components", "4", "--steps", "3",
         "-n", str(int(2000 * scale)), "--batch-size", "8", "--seed", "3", "-o",
         str(d / "syn.h5")]
    out["gen-synthetic"] = Job("gen-synthetic", d, advscale(*g), advscale(*g, "--resume"),
                               lambda d: {"syn": _h5_rows(d / "syn.h5")})
    d = base / "data-import"
    imp = advscale("data", "import", str(data["npz"]), "-o", str(d / "imported.h5"))
    # a kill can land after the atomic rename: the rerun redoes the import (--force)
    out["data-import"] = Job("data-import", d, imp, [*imp, "--force"],
                             lambda d: {"h5": _h5_rows(d / "imported.h5")})
    return out


def run_once(cmd: list[str], kill_after: float | None) -> tuple[bool, str, float]:
    """Run ``cmd``; SIGKILL it after ``kill_after`` s. (killed, stdout, seconds)."""
    t0 = time.time()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=ENV)
        killed = False
        try:
            p.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            killed = True
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        err.seek(0)
        errors = err.read().decode("utf-8", "replace")
    if not killed and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:6])}...: exit {p.returncode}: {errors[-2000:]}")
    return killed, text, time.time() - t0


def soak_job(job: Job, kills: int, rng: random.Random) -> dict:
    """Reference run, then ``kills`` SIGKILLs and a final run; compare."""
    ref_dir = job.dir.with_name(job.dir.name + "-ref")
    ref_dir.mkdir(parents=True)
    ref_cmd = [a.replace(str(job.dir), str(ref_dir)) for a in job.first]
    _, ref_out, ref_s = run_once(ref_cmd, None)
    reference = job.outputs(ref_dir)
    job.dir.mkdir(parents=True)
    stdout, done_kills, started, runs = [], 0, False, 0
    while True:
        cmd = job.again if started else job.first
        window = rng.uniform(0.3, 1.0) * ref_s if done_kills < kills else None
        killed, text, _ = run_once(cmd, window)
        runs += 1
        started = True
        stdout.append(text)
        if killed:
            done_kills += 1
            continue
        if done_kills >= kills:
            break
        # finished before the kill: start the job over to spend the remaining kills
        shutil.rmtree(job.dir)
        job.dir.mkdir(parents=True)
        stdout, started = [], False
    differences = _differences(reference, job, stdout, ref_out)
    return {"kills": done_kills, "runs": runs, "reference_s": round(ref_s, 1),
            "differences": differences, "corrupted": _corrupted(job.dir),
            "stale_temps": _stale(job.dir)}


def _differences(reference: dict, job: Job, stdout: list[str], ref_out: str) -> list[str]:
    diffs = []
    try:
        final = job.outputs(job.dir)
    except Exception as e:  # noqa: BLE001 - an unreadable output is a difference
        return [f"outputs unreadable: {type(e).__name__}: {e}"]
    for key, ref in reference.items():
        if final.get(key) != ref:
            diffs.append(key)
    if job.stdout_records:
        lines = [_strip(json.loads(ln)) for t in stdout for ln in t.splitlines() if ln.strip()]
        seen = [json.dumps(r, sort_keys=True) for r in lines]
        if len(seen) != len(set(seen)):
            diffs.append(f"stdout duplicates: {len(seen) - len(set(seen))}")
        want = {json.dumps(r, sort_keys=True) for r in reference.get("records", [])}
        if set(seen) - want:
            diffs.append("stdout records not in the reference")
    return diffs


def _corrupted(root: Path) -> list[str]:
    bad = []
    for p in root.rglob("*"):
        if not p.is_file() or TEMP_RE.match(p.name):
            continue
        try:
            if p.suffix == ".h5":
                with h5py.File(p, "r") as f:
                    for k in f.keys():
                        f[k][()]
            elif p.suffix == ".safetensors":
                load_tensors(p)
            elif p.suffix in (".jsonl",):
                contents = read_log(p, parse_line)
                if contents.torn_bytes:
                    bad.append(f"{p.name}: torn last line")
            elif p.suffix == ".json":
                json.loads(p.read_text())
        except Exception as e:  # noqa: BLE001 - counting
            bad.append(f"{p.relative_to(root)}: {type(e).__name__}")
    return bad


def _stale(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if TEMP_RE.match(p.name) or p.name.endswith(".partial")]


def prepare(base: Path, scale: float) -> tuple[dict[str, Path], Path]:
    data = {"train": make_images(base / "train.h5", 256, 0),
            "test": make_images(base / "test.h5", 64, 1)}
    rng = np.random.default_rng(2)
    n = int(60_000 * scale)
    np.savez(base / "big.npz", image=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
             label=np.arange(n) % 10)
    data["npz"] = base / "big.npz"
    ck = base / "ckpt"
    run_once(advscale("train", "--data", str(data["train"]), "--eval-data", str(data["test"]),
                      "--model", "wrn-10-1",
                      "--samples", "64", "--batch-size", "16", "--pgd-steps", "1",
                      "--eval-n", "16", "--eval-steps", "1", "--no-progress", "--device", "cpu",
                      "--out", str(ck)), None)
    return data, ck / "last.safetensors"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs per command (default 20)")
    ap.add_argument("--commands", default=",".join(COMMANDS),
                    help=f"comma-separated subset of {', '.join(COMMANDS)}")
    ap.add_argument("--scale", type=float, default=1.0, help="job size multiplier")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the job folders here")
    args = ap.parse_args(argv)
    wanted = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = set(wanted) - set(COMMANDS)
    if unknown:
        ap.error(f"unknown command(s) {', '.join(sorted(unknown))}")
    base = args.workdir or Path(tempfile.mkdtemp(prefix="advscale-soak-"))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rng = random.Random(args.seed)
    data, ckpt = prepare(base, args.scale)
    all_jobs = jobs(base / "jobs", data, ckpt, args.scale)
    report: dict = {"bench": "soak", "kills_per_command": args.kills, "commands": {}}
    for name in wanted:
        report["commands"][name] = soak_job(all_jobs[name], args.kills, rng)
    per = report["commands"].values()
    report["total"] = {"kills": sum(r["kills"] for r in per),
                       "differences": sum(len(r["differences"]) for r in per),
                       "corrupted": sum(len(r["corrupted"]) for r in per),
                       "stale_temps": sum(len(r["stale_temps"]) for r in per)}
    report["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(report))
    if args.workdir is None:
        shutil.rmtree(base, ignore_errors=True)
    t = report["total"]
    return 1 if t["differences"] or t["corrupted"] or t["stale_temps"] else 0


if __name__ == "__main__":
    sys.exit(main())
