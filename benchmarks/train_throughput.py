"""Training throughput: advscale's loop vs a plain hand-written PyTorch loop of the same recipe.

Both train the same model from the same initial weights with the same recipe: TRADES (β = 5,
k-step L∞ PGD with ε = 8/255, step 2/255, the clean prediction computed once per batch, batch
norm frozen during the attack), label smoothing 0.1, SGD + Nesterov momentum 0.9 with weight
decay 5e-4 off norms/biases, a one-cycle cosine schedule, EMA weight averaging and random crop
(pad 4) + flip augmentation. The baseline is written the way a short research script would
be: a map-style Dataset with per-image torchvision transforms, a DataLoader, the TRADES step of
Zhang et al.'s reference code (model.eval() for the attack), a per-parameter EMA update.

advscale's side is the real thing: ``advscale.training.loop.TrainingSession.run()`` end to end,
including its HDF5 reader, device augmentation, keyed RNG, EMA, checkpoint and the final record
(with a 1-image, 0-step evaluation so training dominates). The two loops alternate ``--repeats``
times in one process, and the report is images/s of each and their ratio (advscale / plain),
both per wall-clock second and per CPU-second of the process (on a shared machine the CPU-time
ratio is the steadier one; with ``--threads 1`` it counts exactly the work done).

Usage: .venv/bin/python benchmarks/train_throughput.py [--model wrn-16-4] [--pgd-steps 10]
       [--batch-size 128] [--steps 2] [--repeats 2] [--threads N]
Prints one JSON line on stdout and a summary on stderr.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_data(path: Path, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random CIFAR-shaped HDF5 file (and the same images in RAM for the plain loop)."""
    from advscale.data import CIFAR10_CLASSES
    from advscale.data.layout import ImageFileWriter

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.int64)
    with ImageFileWriter(path, n, source="benchmark", class_names=CIFAR10_CLASSES) as w:
        w.write(images, labels)
    return images, labels


# -- the plain loop ----------------------------------------------------------------------------
class PlainDataset(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        from torchvision.transforms import v2

        self.images, self.labels = images, labels
        self.tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
                              v2.ToDtype(torch.float32, scale=True)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1)
        return self.tf(x), int(self.labels[i])


def plain_trades_loss(model, x, y, steps, eps=8 / 255, step_size=2 / 255, beta=5.0, ls=0.1):
    model.eval()
    with torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1).detach()
    for _ in range(steps):
        x_adv.requires_grad_()
        loss_kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), p_clean, reduction="sum")
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    model.train()
    logits = model(x)
    logits_adv = model(x_adv.detach())
    loss = F.cross_entropy(logits, y, label_smoothing=ls)
    return loss + beta * F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1),
                                  reduction="batchmean")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_loop(model, images, labels, batch, steps, pgd_steps, lr, device: str = "cpu",
               step_ends: list[float] | None = None) -> tuple[float, float]:
    """Train ``steps`` steps; return (wall seconds, CPU seconds of this process).

    With ``step_ends``, the clock time (``perf_counter``, device synchronised) at the end of each
    optimizer step is appended to it: per-step times for :func:`steady_state`.
    """
    cuda = device.startswith("cuda")
    model = model.to(device)
    loader = torch.utils.data.DataLoader(PlainDataset(images, labels), batch_size=batch,
                                         shuffle=True, drop_last=True,
                                         num_workers=4 if cuda else 0, pin_memory=cuda)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 5),
                                                pct_start=0.25)
    ema = copy.deepcopy(model)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, (x, y) in enumerate(loader):
        if i == steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = plain_trades_loss(model, x, y, pgd_steps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(0.995, (1 + i) / (10 + i))
            for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
            for be, b in zip(ema.buffers(), model.buffers(), strict=True):
                be.copy_(b)
        if step_ends is not None:
            _sync(device)
            step_ends.append(time.perf_counter())
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


# -- advscale's loop ---------------------------------------------------------------------------
def advscale_session(h5: Path, model_name, batch, steps, pgd_steps, lr, seed, workdir,
                     device: str = "cpu", compile: bool = False):
    """A ready ``TrainingSession`` of ``steps`` steps (model, data, FLOP count, optimizer)."""
    from advscale.training.config import TrainConfig
    from advscale.training.ddp import DistInfo
    from advscale.training.loop import TrainingSession

    cfg = TrainConfig(data=str(h5), eval_data=str(h5), samples=batch * steps, model=model_name,
                      pgd_steps=pgd_steps, batch_size=batch, lr=lr, eval_every=0, eval_n=1,
                      eval_steps=0, seed=seed, run_id="bench", progress=False, device=device,
                      compile=compile).resolved()
    out = Path(tempfile.mkdtemp(dir=workdir))
    return TrainingSession(cfg, out, DistInfo(), torch.device(device), resuming=False,
                           stdout=io.StringIO())


def advscale_loop(h5: Path, model_name, batch, steps, pgd_steps, lr, seed, workdir,
                  device: str = "cpu", compile: bool = False) -> tuple[float, float]:
    """``TrainingSession.run()`` end to end; (wall seconds, CPU seconds), set-up excluded."""
    run = advscale_session(h5, model_name, batch, steps, pgd_steps, lr, seed, workdir,
                           device=device, compile=compile)
    t0, c0 = time.perf_counter(), time.process_time()
    run.run()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def advscale_timed(h5: Path, model_name, batch, steps, pgd_steps, lr, seed, workdir,
                   device: str = "cpu", compile: bool = False) -> dict[str, object]:
    """advscale's loop with its one-time work apart from its steps.

    ``setup_s``: building the session (model, data, FLOP count, optimizer, compile wrapper);
    ``step_ends``: clock time at the end of each optimizer step (a post-step hook on the
    optimizer, device synchronised); ``tail_s``: from the last step to the end of ``run()``
    (the final evaluation, record and checkpoint); ``start``: when ``run()`` began.
    """
    t0 = time.perf_counter()
    run = advscale_session(h5, model_name, batch, steps, pgd_steps, lr, seed, workdir,
                           device=device, compile=compile)
    setup = time.perf_counter() - t0
    ends: list[float] = []

    def hook(*_: object) -> None:
        _sync(device)
        ends.append(time.perf_counter())

    run.optimizer.register_step_post_hook(hook)
    start = time.perf_counter()
    run.run()
    _sync(device)
    return {"setup_s": setup, "start": start, "step_ends": ends,
            "tail_s": time.perf_counter() - ends[-1] if ends else None}


def steady_state(start: float, step_ends: list[float], skip: int) -> dict[str, float]:
    """Per-step seconds after the first ``skip`` steps: median, p10, p90, mean, count.

    The first steps carry one-time work (cuDNN autotuning, allocator growth, compilation):
    ``first_step_s`` reports the first step apart.
    """
    import statistics

    times = [b - a for a, b in zip([start, *step_ends[:-1]], step_ends, strict=True)]
    steady = times[skip:] or times
    q = statistics.quantiles(steady, n=10) if len(steady) > 1 else [steady[0]] * 9
    return {"median_s": statistics.median(steady), "p10_s": q[0], "p90_s": q[-1],
            "mean_s": statistics.fmean(steady), "steps": len(steady),
            "first_step_s": times[0] if times else float("nan")}


def compare_steady(h5: Path, images, labels, model_name: str, init: dict, batch: int,
                   steps: int, skip: int, pgd_steps: int, lr: float, workdir,
                   device: str = "cpu", compile: bool = False) -> dict[str, object]:
    """Both loops warmed up, then timed over ``steps`` steps; steady-state images/s and ratio.

    Each loop first runs ``skip`` + 1 steps as a warm-up (kernels, allocator, compile caches),
    then a measured run whose first ``skip`` steps are also left out of the steady state.
    """
    from advscale.models import create_model

    def plain(n: int, ends: list[float] | None) -> float:
        m = create_model(model_name).to(memory_format=torch.contiguous_format)
        m.load_state_dict(init)
        if compile:
            m = torch.compile(m)
        start = time.perf_counter()
        plain_loop(m, images, labels, batch, n, pgd_steps, lr, device=device, step_ends=ends)
        return start

    advscale_timed(h5, model_name, batch, skip + 1, pgd_steps, lr, 0, workdir, device, compile)
    plain(skip + 1, None)
    a = advscale_timed(h5, model_name, batch, steps, pgd_steps, lr, 0, workdir, device, compile)
    ends: list[float] = []
    p_start = plain(steps, ends)
    sa, sp = steady_state(a["start"], a["step_ends"], skip), steady_state(p_start, ends, skip)
    return {"advscale_step": sa, "plain_step": sp,
            "advscale_images_per_s": batch / sa["median_s"],
            "plain_images_per_s": batch / sp["median_s"],
            "ratio_advscale_over_plain": sp["median_s"] / sa["median_s"],
            "one_time_s": {"advscale_setup": a["setup_s"], "advscale_eval_checkpoint":
                           a["tail_s"], "advscale_first_step": sa["first_step_s"],
                           "plain_first_step": sp["first_step_s"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="wrn-16-4")
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="alternating measurements per loop")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--steady", type=int, default=0, metavar="STEPS",
                    help="steady-state mode: both loops warmed up, then per-step times over "
                    "STEPS steps (the first --skip left out); the GPU check's measurement")
    ap.add_argument("--skip", type=int, default=2, help="steady-state mode: warm-up steps")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steady:
        main_steady(args)
        return
    from advscale.models import create_model

    with tempfile.TemporaryDirectory() as tmp:
        n = args.batch_size * max(args.steps, 1) * 2
        images, labels = make_data(Path(tmp) / "data.h5", n)
        torch.manual_seed(0)
        init = create_model(args.model).state_dict()
        times: dict[str, list[float]] = {"advscale": [], "plain": []}
        cpu: dict[str, list[float]] = {"advscale": [], "plain": []}
        # warm-up: one step each (allocator, oneDNN kernels, FLOP counter cache)
        advscale_loop(Path(tmp) / "data.h5", args.model, args.batch_size, 1, args.pgd_steps,
                      args.lr, 0, tmp)
        m = create_model(args.model)
        m.load_state_dict(init)
        plain_loop(m, images, labels, args.batch_size, 1, args.pgd_steps, args.lr)
        for r in range(args.repeats):
            order = ("advscale", "plain") if r % 2 == 0 else ("plain", "advscale")
            for which in order:
                if which == "advscale":
                    s, c = advscale_loop(Path(tmp) / "data.h5", args.model, args.batch_size,
                                         args.steps, args.pgd_steps, args.lr, 0, tmp)
                else:
                    m = create_model(args.model).to(memory_format=torch.contiguous_format)
                    m.load_state_dict(init)
                    s, c = plain_loop(m, images, labels, args.batch_size, args.steps,
                                      args.pgd_steps, args.lr)
                times[which].append(s)
                cpu[which].append(c)
                imgs = args.steps * args.batch_size
                print(f"{which:9s} repeat {r}: {imgs / s:8.3f} img/s wall, {imgs / c:8.3f} img/s "
                      "per CPU-second", file=sys.stderr, flush=True)
    imgs = args.steps * args.batch_size
    ips = {k: imgs * len(v) / sum(v) for k, v in times.items()}
    ipc = {k: imgs * len(v) / sum(v) for k, v in cpu.items()}
    result = {
        "benchmark": "train_throughput", "model": args.model, "loss": "trades",
        "pgd_steps": args.pgd_steps, "batch_size": args.batch_size, "steps": args.steps,
        "repeats": args.repeats, "threads": torch.get_num_threads(), "device": "cpu",
        "advscale_images_per_s": ips["advscale"], "plain_images_per_s": ips["plain"],
        "ratio_advscale_over_plain": ips["advscale"] / ips["plain"],
        "advscale_images_per_cpu_s": ipc["advscale"], "plain_images_per_cpu_s": ipc["plain"],
        "ratio_per_cpu_s": ipc["advscale"] / ipc["plain"],
        "advscale_s": times["advscale"], "plain_s": times["plain"],
        "advscale_cpu_s": cpu["advscale"], "plain_cpu_s": cpu["plain"],
    }
    print(f"advscale {ips['advscale']:.3f} img/s, plain {ips['plain']:.3f} img/s: ratio "
          f"{result['ratio_advscale_over_plain']:.3f} (wall), "
          f"{result['ratio_per_cpu_s']:.3f} (per CPU-second)", file=sys.stderr)
    print(json.dumps(result))


def main_steady(args: argparse.Namespace) -> None:
    """``--steady STEPS``: :func:`compare_steady` on the CPU; one JSON line."""
    from advscale.models import create_model

    with tempfile.TemporaryDirectory() as tmp:
        n = args.batch_size * (args.steady + args.skip + 2)
        images, labels = make_data(Path(tmp) / "data.h5", n)
        torch.manual_seed(0)
        init = create_model(args.model).state_dict()
        res = compare_steady(Path(tmp) / "data.h5", images, labels, args.model, init,
                             args.batch_size, args.steady, args.skip, args.pgd_steps, args.lr,
                             tmp)
    result = {"benchmark": "train_throughput", "mode": "steady", "model": args.model,
              "pgd_steps": args.pgd_steps, "batch_size": args.batch_size,
              "threads": torch.get_num_threads(), "device": "cpu", **res}
    print(f"steady state: advscale {res['advscale_images_per_s']:.3f} img/s, plain "
          f"{res['plain_images_per_s']:.3f} img/s: ratio {res['ratio_advscale_over_plain']:.3f}",
          file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
