"""The GPU check: every CUDA path of advscale, measured, inside a hard wall-clock budget.

One command (``bin/advscale-gpu-check``, or ``python benchmarks/gpu_check.py``) runs these
stages, each in its own subprocess with its own time cap, so a stage that hangs or runs out of
memory is stopped and reported while the others still run:

1. ``throughput``: TRADES-10 training of WRN-28-10 (then WRN-70-16 if time allows) in bf16:
   advscale's loop (``TrainingSession.run``, channels-last, fused SGD, EMA) against a plain
   PyTorch loop of the same recipe in the same process (``benchmarks/train_throughput.py``),
   eager and with ``--compile``, at the largest batch that fits; both warmed up, then timed
   step by step in steady state (median and p10/p90 per-step time; set-up, first step and the
   final evaluation + checkpoint reported apart); images/s, model-FLOPs utilisation (FLOPs
   from ``count-flops`` against the peak in :data:`PEAKS`), peak memory.
2. ``short-run``: ``advscale energy -- advscale train`` of a small WRN on CIFAR-10 from
   ``$ADVSCALE_DATA`` (about 2 minutes on a GPU): the loss must fall and robust accuracy rise
   above chance; the energy record says measured (NVML) or estimated.
3. ``attack``: PGD-40-CW and AutoAttack (standard) on a few hundred test images of that run,
   images/s each.
4. ``ddp``: ``torchrun --nproc_per_node=1 -m advscale train`` (NCCL on a GPU, gloo on CPU).
5. ``generate``: ``gen-synthetic`` throughput of the built-in U-Net at 20 steps.

It writes one JSON file (``--out``, default ``gpu_check.json``) with every figure and the raw
records, and prints a one-screen summary on stderr. ``--device cpu --tiny`` runs every stage at
toy sizes with no wall-clock caps (``tests/test_gpu_check.py`` runs it in ``make test`` and
asserts what ran, never how long it took).

Usage: bin/advscale-gpu-check [--device cuda] [--budget-s 480] [--out gpu_check.json]
       bin/advscale-gpu-check --device cpu --tiny
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PEAKS = {  # dense bf16 tensor-core peaks, FLOP/s, from the vendors' data sheets (no sparsity)
    "H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12,
    "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12,
    "RTX 4090": 165e12, "V100": 125e12,
}
"""Labelled as data-sheet peaks: the MFU they give is model FLOPs / (time x peak)."""


@dataclass(frozen=True)
class Stage:
    """One stage: its name and wall-clock cap (seconds) at full and tiny size."""

    name: str
    cap_s: float
    tiny_cap_s: float


STAGES = (Stage("throughput", 200, 40), Stage("short-run", 150, 40), Stage("attack", 60, 30),
          Stage("ddp", 45, 30), Stage("generate", 45, 30))


def peak_flops(device_name: str) -> tuple[float | None, str | None]:
    """The data-sheet bf16 peak for a CUDA device name, and the table key that matched."""
    for key in sorted(PEAKS, key=len, reverse=True):
        if key.lower() in device_name.lower():
            return PEAKS[key], key
    return None, None


def log(msg: str) -> None:
    print(f"gpu-check: {msg}", file=sys.stderr, flush=True)


def advscale_cmd() -> list[str]:
    return [sys.executable, "-m", "advscale"]


def run_cmd(cmd: list[str], timeout: float | None, cwd: Path, stdout_path: Path | None = None
            ) -> tuple[int, float, str]:
    """Run ``cmd`` (stdout to a file when given; no cap when ``timeout`` is None); (exit
    code, seconds, stderr tail)."""
    t0 = time.perf_counter()
    out = open(stdout_path, "w") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.PIPE, text=True,
                           timeout=None if timeout is None else max(timeout, 1),
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        return p.returncode, time.perf_counter() - t0, p.stderr[-2000:]
    except subprocess.TimeoutExpired as e:
        tail = (e.stderr or b"")[-2000:]
        return 124, time.perf_counter() - t0, tail.decode() if isinstance(tail, bytes) else tail
    finally:
        if stdout_path:
            out.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- stage 1: training throughput (in a child process: python gpu_check.py --stage ...) -------
def largest_batch(model: str, device: str, candidates: list[int], h5: Path, work: Path,
                  compile: bool) -> int:
    """The largest candidate batch whose 1-step advscale run fits in memory."""
    import torch
    from train_throughput import advscale_loop

    for bs in candidates:
        try:
            advscale_loop(h5, model, bs, 1, 10, 0.1, 0, work, device=device, compile=compile)
            return bs
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
    return candidates[-1]


def throughput_one(model: str, device: str, tiny: bool, compile: bool) -> dict[str, Any]:
    """advscale vs plain images/s of one model in steady state (both in this process).

    Both loops are warmed up first (cuDNN autotuning, allocator, compilation), then timed step
    by step (:func:`train_throughput.compare_steady`): images/s is the batch over the median
    step time after the warm-up steps, with the p10/p90 spread; one-time work (set-up with the
    FLOP count, the first step, the final evaluation and checkpoint) is reported apart.
    """
    import torch
    from train_throughput import compare_steady, make_data

    from advscale.models import create_model
    from advscale.training.flops import count_training_flops

    cuda = device.startswith("cuda")
    pgd, steps, skip = (1, 6, 2) if tiny else (10, 30, 5)
    work = Path(tempfile.mkdtemp())
    cands = [8] if tiny else [1024, 512, 256, 128, 64]
    n = (8 if tiny else 1024) * (steps + skip + 2)
    images, labels = make_data(work / "data.h5", n)
    bs = largest_batch(model, device, cands, work / "data.h5", work, compile) if cuda else 8
    torch.manual_seed(0)
    init = create_model(model).state_dict()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    res = compare_steady(work / "data.h5", images, labels, model, init, bs, steps, skip, pgd,
                         0.1, work, device=device, compile=compile)
    mem = torch.cuda.max_memory_allocated() if cuda else None
    per_sample = count_training_flops(model, "trades", pgd).train_flops_per_sample
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak, peak_key = peak_flops(name) if cuda else (None, None)
    a_ips = res["advscale_images_per_s"]
    return {"model": model, "pgd_steps": pgd, "batch_size": bs, "steps": steps,
            "warmup_steps": skip, "compile": compile, "device_name": name, **res,
            "train_flops_per_sample": per_sample,
            "mfu": a_ips * per_sample / peak if peak else None,
            "peak_flops_per_s": peak, "peak_source": f"data sheet: {peak_key}" if peak else None,
            "peak_memory_bytes": mem, "note": "steady state: median step after warm-up; plain "
            "loop: fp32, eval-mode attack, per-image transforms (a short research script); "
            "advscale: bf16 on CUDA"}


def _half(cap: float | None) -> float | None:
    return None if cap is None else cap / 2


# -- the stages as the parent runs them ---------------------------------------------------------
class Check:
    """Runs the stages under one budget and collects their figures."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.a, self.work = args, work
        self.t0 = time.perf_counter()
        self.results: dict[str, Any] = {"device": args.device, "tiny": args.tiny,
                                        "budget_s": args.budget_s, "stages": {}}

    def left(self) -> float:
        """Seconds of the budget left (infinite without one)."""
        if self.a.budget_s is None:
            return float("inf")
        return self.a.budget_s - (time.perf_counter() - self.t0)

    def cap(self, stage: Stage) -> float | None:
        """The stage's wall-clock cap: only under a budget (a GPU run's), never in tiny mode
        unless ``--budget-s`` is given."""
        if self.a.budget_s is None:
            return None
        return min(stage.tiny_cap_s if self.a.tiny else stage.cap_s, self.left())

    def data(self) -> tuple[Path, Path]:
        """CIFAR-10 train/test HDF5 from $ADVSCALE_DATA, else random images (said so)."""
        from train_throughput import make_data

        tar = Path(os.environ.get("ADVSCALE_DATA", "")) / "cifar-10-python.tar.gz"
        train, test = self.work / "train.h5", self.work / "test.h5"
        if tar.is_file() and not self.a.tiny:
            for split, path in (("train", train), ("test", test)):
                run_cmd([*advscale_cmd(), "data", "import", str(tar), "--split", split, "-o",
                         str(path)], 120, self.work)
            self.results["data"] = "CIFAR-10 from $ADVSCALE_DATA"
        else:
            make_data(train, 512)
            make_data(test, 128, seed=1)
            self.results["data"] = "random images (tiny mode or no $ADVSCALE_DATA)"
        return train, test

    def stage_throughput(self, stage: Stage) -> dict[str, Any]:
        models = ["wrn-10-1"] if self.a.tiny else ["wrn-28-10", "wrn-70-16"]
        rows = []
        for model in models:
            for compile in (False, True):
                cap = _half(self.cap(stage))
                if compile and self.a.tiny:  # torch.compile on a CPU takes minutes
                    rows.append({"model": model, "compile": compile,
                                 "skipped": "compile not run in tiny mode"})
                    continue
                if cap is not None and cap < 5:
                    rows.append({"model": model, "compile": compile, "skipped": "no time left"})
                    continue
                rows.append(self._child("throughput", cap, model=model, compile=compile))
        return {"runs": rows}

    def _child(self, stage: str, cap: float, **kw: Any) -> dict[str, Any]:
        out = self.work / f"{stage}-{len(os.listdir(self.work))}.json"
        cmd = [sys.executable, __file__, "--stage", stage, "--device", self.a.device,
               "--child-out", str(out), "--child-args", json.dumps(kw)]
        if self.a.tiny:
            cmd.append("--tiny")
        rc, wall, tail = run_cmd(cmd, cap, self.work)
        res = json.loads(out.read_text()) if out.is_file() else {}
        return {**kw, **res, "exit_code": rc, "wall_s": wall,
                **({"stderr_tail": tail} if rc else {})}

    def stage_short_run(self, stage: Stage) -> dict[str, Any]:
        train, test = self.train, self.test
        model, samples = ("wrn-10-1", 256) if self.a.tiny else ("wrn-16-4", 200_000)
        run = self.work / "run"
        cmd = [*advscale_cmd(), "energy", "--", *advscale_cmd(), "train", "--out", str(run),
               "--data", str(train), "--eval-data", str(test), "--model", model,
               "--samples", str(samples), "--device", self.a.device, "--no-progress"]
        cmd += (["--pgd-steps", "1", "--batch-size", "32", "--lr", "0.1", "--eval-n", "32",
                 "--eval-steps", "2"] if self.a.tiny else ["--eval-n", "512"])
        rc, wall, tail = run_cmd(cmd, self.cap(stage), self.work, self.work / "run.jsonl")
        recs = read_jsonl(self.work / "run.jsonl")
        evals = [r for r in recs if r.get("kind") == "train.eval"]
        energy = next((r for r in recs if r.get("kind") == "energy"), None)
        out: dict[str, Any] = {"exit_code": rc, "wall_s": wall, "model": model,
                               "samples": samples, "records": recs}
        if evals:
            out["train_loss_first"], out["train_loss_last"] = (evals[0].get("train_loss"),
                                                               evals[-1].get("train_loss"))
            out["robust_acc"] = evals[-1].get("robust_acc")
            out["loss_fell"] = bool(out["train_loss_last"] < out["train_loss_first"])
            out["above_chance"] = bool((out["robust_acc"] or 0) > 0.1)
            out["images_per_s"] = samples / evals[-1]["wall_s"] if evals[-1].get("wall_s") else None
        if energy:
            out["energy_basis"] = energy.get("basis")
            out["energy_kwh"] = energy.get("it_energy_kwh")
        if rc:
            out["stderr_tail"] = tail
        return out

    def stage_attack(self, stage: Stage) -> dict[str, Any]:
        run = self.work / "run"
        if not (run / "last.safetensors").is_file():
            return {"skipped": "no checkpoint from the short run"}
        out = {}
        plans = (("pgd-cw", ["--steps", "2" if self.a.tiny else "40"], 16 if self.a.tiny else 500),
                 ("aa-standard" if not self.a.tiny else "apgd-ce",
                  ["--steps", "2"] if self.a.tiny else [], 4 if self.a.tiny else 200))
        for name, extra, n in plans:
            path = self.work / f"attack-{name}.jsonl"
            cmd = [*advscale_cmd(), "attack", str(run), "--data", str(self.test), "--attack",
                   name, "--n", str(n), "--device", self.a.device, *extra]
            rc, wall, tail = run_cmd(cmd, _half(self.cap(stage)), self.work, path)
            recs = read_jsonl(path)
            rec = recs[-1] if recs else {}
            out[name] = {"exit_code": rc, "wall_s": wall, "images": n,
                         "images_per_s": n / rec["wall_s"] if rec.get("wall_s") else None,
                         "robust_acc": rec.get("robust_acc"), "record": rec,
                         **({"stderr_tail": tail} if rc else {})}
        return out

    def stage_ddp(self, stage: Stage) -> dict[str, Any]:
        torchrun = Path(sys.executable).with_name("torchrun")
        cmd = [str(torchrun), "--nproc_per_node=1", "-m", "advscale", "train", "--out",
               str(self.work / "ddp"), "--data", str(self.train), "--eval-data", str(self.test),
               "--model", "wrn-10-1", "--samples", "128" if self.a.tiny else "20000",
               "--pgd-steps", "1", "--batch-size", "32" if self.a.tiny else "256",
               "--eval-n", "16", "--eval-steps", "1", "--device", self.a.device,
               "--no-progress"]
        rc, wall, tail = run_cmd(cmd, self.cap(stage), self.work, self.work / "ddp.jsonl")
        recs = read_jsonl(self.work / "ddp.jsonl")
        return {"exit_code": rc, "wall_s": wall, "records": len(recs),
                "backend": "nccl" if self.a.device.startswith("cuda") else "gloo",
                **({"stderr_tail": tail} if rc else {})}

    def stage_generate(self, stage: Stage) -> dict[str, Any]:
        unet = self.work / "unet"
        kimg, n = ("0.032", 16) if self.a.tiny else ("2", 2048)
        small = ["--channels", "16", "--channel-mult", "1,2", "--blocks", "1"]
        rc, wall, tail = run_cmd([*advscale_cmd(), "gen-synthetic", "train-denoiser",
                                  str(self.train), "-o", str(unet), "--kimg", kimg,
                                  "--batch-size", "16", "--device", self.a.device, *small],
                                 _half(self.cap(stage)), self.work)
        if rc:
            return {"exit_code": rc, "stage": "train-denoiser", "stderr_tail": tail}
        path = self.work / "gen.jsonl"
        rc, wall, tail = run_cmd([*advscale_cmd(), "gen-synthetic", "--generator",
                                  "builtin-unet", "--model", str(unet), "--steps", "20", "-n",
                                  str(n), "-o", str(self.work / "syn.h5"), "--device",
                                  self.a.device], _half(self.cap(stage)), self.work, path)
        recs = read_jsonl(path)
        rec = recs[-1] if recs else {}
        return {"exit_code": rc, "wall_s": wall, "images": n, "steps": 20,
                "images_per_s": rec.get("images_per_s"), "record": rec,
                **({"stderr_tail": tail} if rc else {})}

    def run(self) -> dict[str, Any]:
        self.train, self.test = self.data()
        for stage in STAGES:
            if self.left() < 5:
                self.results["stages"][stage.name] = {"skipped": "budget spent"}
                continue
            cap = self.cap(stage)
            log(f"{stage.name} (" + ("no cap" if cap is None else
                                     f"cap {cap:.0f} s, {self.left():.0f} s left") + ")")
            t = time.perf_counter()
            fn = getattr(self, "stage_" + stage.name.replace("-", "_"))
            self.results["stages"][stage.name] = fn(stage)
            self.results["stages"][stage.name]["stage_s"] = time.perf_counter() - t
        self.results["wall_s"] = time.perf_counter() - self.t0
        return self.results


def summary(res: dict[str, Any]) -> str:
    """One screen of the figures."""
    st = res["stages"]
    budget = "no budget" if res["budget_s"] is None else f"of {res['budget_s']:.0f} s"
    lines = [f"advscale GPU check: device {res['device']}, tiny={res['tiny']}, "
             f"{res.get('wall_s', 0):.0f} s {budget}; data: {res.get('data')}"]
    for r in st.get("throughput", {}).get("runs", []):
        if "advscale_images_per_s" in r:
            mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "n/a"
            mem = r.get("peak_memory_bytes")
            lines.append(f"  train {r['model']} compile={r['compile']} batch {r['batch_size']}: "
                         f"advscale {r['advscale_images_per_s']:.1f} img/s, plain "
                         f"{r['plain_images_per_s']:.1f} img/s "
                         f"(x{r['ratio_advscale_over_plain']:.2f}; step p10-p90 "
                         f"{r['advscale_step']['p10_s']:.3f}-{r['advscale_step']['p90_s']:.3f} s"
                         f" vs {r['plain_step']['p10_s']:.3f}-{r['plain_step']['p90_s']:.3f} s),"
                         f" MFU {mfu}"
                         + (f", peak {mem / 2**30:.1f} GiB" if mem else ""))
        else:
            lines.append(f"  train {r.get('model')} compile={r.get('compile')}: "
                         f"{r.get('skipped') or 'failed (exit ' + str(r.get('exit_code')) + ')'}")
    sr = st.get("short-run", {})
    lines.append(f"  short run: exit {sr.get('exit_code')}, loss {sr.get('train_loss_first')} → "
                 f"{sr.get('train_loss_last')}, robust {sr.get('robust_acc')}, energy "
                 f"{sr.get('energy_kwh')} kWh ({sr.get('energy_basis')})")
    for name, a in st.get("attack", {}).items():
        if isinstance(a, dict) and "exit_code" in a:
            lines.append(f"  attack {name}: exit {a['exit_code']}, {a.get('images_per_s')} img/s")
    for name in ("ddp", "generate"):
        s = st.get(name, {})
        lines.append(f"  {name}: exit {s.get('exit_code')}"
                     + (f", {s.get('images_per_s')} img/s" if name == "generate" else ""))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu")
    ap.add_argument("--tiny", action="store_true", help="toy sizes (the CPU test mode)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="hard wall-clock budget, seconds (default 480 on a GPU; tiny mode: "
                    "none, every stage runs to its end)")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-args", default="{}", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.budget_s is None and not a.tiny:
        a.budget_s = 480.0
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.stage == "throughput":
        kw = json.loads(a.child_args)
        a.child_out.write_text(json.dumps(throughput_one(kw["model"], a.device, a.tiny,
                                                         kw["compile"])))
        return 0
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("advscale-gpu-check: error: no CUDA GPU here; use --device cpu --tiny",
                  file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        res = Check(a, Path(tmp)).run()
    a.out.write_text(json.dumps(res, indent=1, default=str))
    print(summary(res), file=sys.stderr)
    print(json.dumps({"benchmark": "gpu_check", "out": str(a.out), "wall_s": res["wall_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
