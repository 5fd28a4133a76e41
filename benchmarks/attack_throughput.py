"""Attack throughput: PGD-40-CW and AutoAttack (standard) images/s, against a clean forward pass.

Measured in one run on one model (default WRN-16-4, fixed random init, eval mode, fp32, on
``--device``):

* ``forward``     — clean inference images/s: the baseline every other rate is divided into,
  giving each attack's cost in *forward-pass equivalents per image* (model- and
  hardware-independent to first order).
* ``pgd40-cw``    — advscale's PGD-40 on the CW margin (eps 8/255, step 2/255, random start),
  through the evaluation service (:func:`advscale.attacks.robustness.attack_batch`).
  Its cost does not depend on the model's robustness: every image runs all 40 steps.
* ``aa-standard`` — AutoAttack standard through advscale's adapter, in two bounds:
  ``best``  (eps 8/255 on a random-init model: APGD-CE breaks every image, the later attacks
  have nothing left to do) and ``worst`` (eps 1e-4: nothing breaks, so every image runs all of
  APGD-CE, APGD-T ×9 targets, FAB-T ×9 targets and Square's 5000 queries; a robust image of a
  real model costs this). Per stage, the model calls are counted (images forwarded with and
  without gradients) to express the cost in forward-pass equivalents (backward ≈ 2 forwards).
* ``overhead``    — advscale's adapter runs AutoAttack one attack at a time (to get per-attack
  counts and the attack that broke each image); compared here against one plain
  ``run_standard_evaluation`` call of the same package on the same images and seed (a smaller
  model, worst case): time ratio, and whether the robust flags agree.

Labels are the model's own clean predictions, so every image counts as clean-correct and is
attacked. From the worst-case forward equivalents it prints an **estimate** (labelled as such)
of a full 10,000-image AutoAttack of a WRN-28-10 on a GPU, given an assumed sustained
throughput (``--gpu-flops``) and clean/robust fractions (``--clean``, ``--robust``).

Prints one JSON line on stdout and a table on stderr.

    python benchmarks/attack_throughput.py --model wrn-16-4 --n-pgd 32 --n-aa 2 --threads 1
    python benchmarks/attack_throughput.py --model wrn-28-10 --device cuda --n-pgd 1000 --n-aa 50
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from advscale.attacks.autoattack import AutoAttackRunner, find_backend
from advscale.attacks.robustness import attack_batch, image_outcomes
from advscale.models import create_model
from advscale.training.flops import count_training_flops


class CallCounter:
    """Counts images through ``model.forward``, split by whether autograd was recording."""

    def __init__(self, model: nn.Module) -> None:
        self.no_grad = 0
        self.with_grad = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, _module: nn.Module, args: tuple) -> None:
        n = int(args[0].shape[0])
        if torch.is_grad_enabled() and args[0].requires_grad:
            self.with_grad += n
        else:
            self.no_grad += n

    def reset(self) -> tuple[int, int]:
        out = (self.no_grad, self.with_grad)
        self.no_grad = self.with_grad = 0
        return out

    @staticmethod
    def forward_equivalents(no_grad: int, with_grad: int) -> float:
        """Forward-pass equivalents: a forward with its backward counts 3."""
        return no_grad + 3.0 * with_grad


DEVICE = torch.device("cpu")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    out: list[float] = []
    _sync()
    t = time.perf_counter()
    yield out
    _sync()
    out.append(time.perf_counter() - t)


def images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g).to(DEVICE)


def labels_of(model: nn.Module, x: torch.Tensor, bs: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + bs]).argmax(1) for i in range(0, len(x), bs)])


def run_stages(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, bs: int,
               counter: CallCounter) -> dict:
    """AutoAttack standard through the adapter, timing and counting each stage."""
    runner = AutoAttackRunner(model, "aa-standard", eps=eps, seed=0, device=DEVICE)
    stage_stats: dict[str, dict] = {}
    orig = runner._run_one

    def wrapped(xs, ys, batch_size):
        name = runner.aa.attacks_to_run[0]
        counter.reset()
        t = time.perf_counter()
        out = orig(xs, ys, batch_size)
        ng, wg = counter.reset()
        stage_stats[name] = {"images": int(len(xs)), "s": time.perf_counter() - t,
                             "fwd_equiv": CallCounter.forward_equivalents(ng, wg)}
        return out

    runner._run_one = wrapped  # type: ignore[method-assign]
    with timed() as t:
        raw = runner.run(x, y, batch_size=bs)
    total = t[0]
    res = image_outcomes(y.cpu().numpy(), raw.pred_clean, raw.pred_adv, raw.stages,
                         raw.broken_stage)
    return {"s": total, "images_per_s": len(x) / total, "per_attack_robust":
            res.per_attack, "stages": stage_stats, "robust": res.robust}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="wrn-16-4")
    ap.add_argument("--n-pgd", type=int, default=32, help="images for PGD-40")
    ap.add_argument("--n-aa", type=int, default=4, help="images for AutoAttack (each bound)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--overhead-model", default="wrn-10-1")
    ap.add_argument("--n-overhead", type=int, default=4)
    ap.add_argument("--skip-worst", action="store_true", help="skip the slow worst-case AA")
    ap.add_argument("--gpu-flops", type=float, default=40e12,
                    help="assumed sustained GPU FLOP/s for the estimate (A100 fp32/TF32-ish)")
    ap.add_argument("--clean", type=float, default=0.90, help="clean fraction for the estimate")
    ap.add_argument("--robust", type=float, default=0.60, help="robust fraction for estimate")
    return ap.parse_args()


def measure_forward(model: nn.Module, a: argparse.Namespace, out: dict) -> float:
    """Clean inference images/s (the baseline)."""
    xb = images(max(a.batch, 64))
    labels_of(model, xb[: a.batch], a.batch)  # warm-up
    with timed() as t:
        for _ in range(3):
            labels_of(model, xb, a.batch)
    fwd_rate = 3 * len(xb) / t[0]
    out["forward_images_per_s"] = fwd_rate
    _log(f"{a.model} on {DEVICE}, {out['threads']} threads; forward {fwd_rate:.1f} images/s")
    return fwd_rate


def measure_pgd(model: nn.Module, counter: CallCounter, a: argparse.Namespace, fwd_rate: float,
                out: dict) -> None:
    """PGD-40-CW through the evaluation service."""
    x = images(a.n_pgd, 1)
    y = labels_of(model, x, a.batch)
    counter.reset()
    with timed() as t:
        for i in range(0, len(x), a.batch):
            attack_batch(model, x[i:i + a.batch], y[i:i + a.batch], index=i, seed=0,
                         loss="cw", eps=8 / 255, step_size=2 / 255, steps=40)
    pgd_fe = CallCounter.forward_equivalents(*counter.reset()) / len(x)
    out["pgd40_cw_images_per_s"] = len(x) / t[0]
    out["pgd40_cw_forward_equivalents_per_image"] = pgd_fe
    out["pgd40_cw_time_ratio_to_forward"] = fwd_rate / out["pgd40_cw_images_per_s"]
    _log(f"PGD-40-CW: {out['pgd40_cw_images_per_s']:.2f} images/s, "
         f"{out['pgd40_cw_time_ratio_to_forward']:.0f}x a forward pass ({pgd_fe:.0f} counted)")


def estimate_full_aa(stages: dict, fe_all: float, a: argparse.Namespace, out: dict) -> None:
    """The estimate (not a measurement): 10k images of WRN-28-10 on a GPU."""
    fwd_flops = count_training_flops("wrn-28-10", "standard").forward_flops_per_image
    fe_ce = stages.get("apgd-ce", {}).get("forward_equivalents_per_image", 0.0)
    fe_rest = fe_all - fe_ce
    fe_10k = 10_000 * (a.clean * fe_ce + a.robust * fe_rest)
    est_s = fe_10k * fwd_flops / a.gpu_flops
    out["estimate_wrn28_10_aa_10k"] = {
        "kind": "estimate", "forward_flops_per_image": fwd_flops,
        "assumed_gpu_flops_per_s": a.gpu_flops, "assumed_clean": a.clean,
        "assumed_robust": a.robust, "forward_equivalents": fe_10k,
        "flops": fe_10k * fwd_flops, "gpu_s": est_s, "gpu_h": est_s / 3600}
    _log(f"ESTIMATE: full 10k AA standard of WRN-28-10 (clean {a.clean}, robust "
         f"{a.robust}) ≈ {fe_10k * fwd_flops:.2e} FLOPs ≈ {est_s / 3600:.1f} GPU-hours at an "
         f"assumed {a.gpu_flops:.0e} FLOP/s sustained")


def measure_aa(model: nn.Module, counter: CallCounter, a: argparse.Namespace, fwd_rate: float,
               out: dict) -> None:
    """AutoAttack standard: best and (unless skipped) worst case, then the estimate."""
    x = images(a.n_aa, 2)
    y = labels_of(model, x, a.batch)
    best = run_stages(model, x, y, 8 / 255, a.batch, counter)
    out["aa_standard_best_images_per_s"] = best["images_per_s"]
    out["aa_standard_best_per_attack_robust"] = best["per_attack_robust"]
    _log(f"AA standard, best case (eps 8/255, all broken by APGD-CE): "
         f"{best['images_per_s']:.3f} images/s {best['per_attack_robust']}")
    if a.skip_worst:
        return
    worst = run_stages(model, x, y, 1e-4, a.batch, counter)
    out["aa_standard_worst_images_per_s"] = worst["images_per_s"]
    out["aa_standard_worst_per_attack_robust"] = worst["per_attack_robust"]
    stages = {k: {"s_per_image": v["s"] / v["images"],
                  "forward_equivalents_per_image": v["fwd_equiv"] / v["images"]}
              for k, v in worst["stages"].items()}
    out["aa_standard_worst_stages"] = stages
    fe_all = sum(v["forward_equivalents_per_image"] for v in stages.values())
    out["aa_standard_worst_forward_equivalents_per_image"] = fe_all
    out["aa_standard_worst_time_ratio_to_forward"] = fwd_rate / worst["images_per_s"]
    _log(f"AA standard, worst case (eps 1e-4, nothing broken): "
         f"{worst['images_per_s']:.4f} images/s, {fe_all:,.0f} forward equivalents/image")
    for k, v in stages.items():
        _log(f"  {k:8s} {v['s_per_image']:8.1f} s/image "
             f"{v['forward_equivalents_per_image']:9,.0f} fwd-equiv/image")
    estimate_full_aa(stages, fe_all, a, out)


def measure_overhead(backend: object, a: argparse.Namespace, out: dict) -> None:
    """advscale's adapter against one plain run_standard_evaluation call."""
    small = create_model(a.overhead_model).eval().requires_grad_(False).to(DEVICE)
    xs = images(a.n_overhead, 3)
    ys = labels_of(small, xs, a.batch)
    runner = AutoAttackRunner(small, "aa-standard", eps=1e-4, seed=0, device=DEVICE)
    with timed() as t:
        raw = runner.run(xs, ys, batch_size=a.batch)
    ours = image_outcomes(ys.cpu().numpy(), raw.pred_clean, raw.pred_adv, raw.stages,
                          raw.broken_stage)
    plain = backend.cls(small, eps=1e-4, seed=0, version="standard", device=DEVICE,
                        norm="Linf")
    torch.manual_seed(0)
    with timed() as t2, contextlib.redirect_stdout(sys.stderr):
        kw = {"batch_size": a.batch} if backend.package == "pyautoattack" else {
            "bs": a.batch, "return_labels": True}
        _, y_plain = plain.run_standard_evaluation(xs, ys, **kw)
    agree = bool(np.array_equal(ours.robust, (y_plain == ys).cpu().numpy()))
    out["overhead"] = {"model": a.overhead_model, "n": a.n_overhead, "adapter_s": t[0],
                       "plain_s": t2[0], "ratio": t[0] / t2[0], "robust_flags_agree": agree}
    _log(f"adapter vs plain run_standard_evaluation ({a.overhead_model}, {a.n_overhead} images,"
         f" worst case): {t[0]:.1f} s vs {t2[0]:.1f} s (x{t[0] / t2[0]:.2f}), flags agree: "
         f"{agree}")


def main() -> None:
    a = parse_args()
    global DEVICE
    DEVICE = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    backend = find_backend()
    model = create_model(a.model).eval().requires_grad_(False).to(DEVICE)
    counter = CallCounter(model)
    out: dict = {"model": a.model, "device": str(DEVICE), "threads": torch.get_num_threads(),
                 "package": backend.package, "package_version": backend.version}
    fwd_rate = measure_forward(model, a, out)
    measure_pgd(model, counter, a, fwd_rate, out)
    measure_aa(model, counter, a, fwd_rate, out)
    measure_overhead(backend, a, out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
