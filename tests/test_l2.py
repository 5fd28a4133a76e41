"""The L2 threat model against independent definitions (issue 24; docs/fidelity.md).

* L2 PGD of the evaluation service: per-image results equal a re-implementation written here
  from the documented rule (seeded start uniform in the ball, L2-normalised gradient steps,
  projection onto the ball, then [0, 1]);
* L2 AutoAttack through advscale (registry → runner → evaluation service): per-image outcomes
  equal fra31's code (``pyautoattack``) called directly with the same seed;
* a TRADES-L2 training step equals a re-implementation here to 1e-6 (loss, adversarial
  examples, gradients).
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_fidelity import _track_stats, ref_trades_outer
from torch import nn

from advscale.attacks.robustness import attack_batch
from advscale.attacks.settings import AttackSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS = 0.5
AA_EPS = 0.1
"""A radius at which the tiny net keeps some images robust and loses others under AutoAttack."""
TOL = 1e-6


def tiny_net(seed: int = 0, bn: bool = False) -> nn.Module:
    """A 2-layer conv net on 3×8×8 images, 10 classes (AutoAttack's targeted stages need 10)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(3, 6, 3, stride=2, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(6))
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 10)]
    return nn.Sequential(*layers)


def batch(model: nn.Module, n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] and labels: the clean prediction, except two wrong ones."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, 3, 8, 8), generator=g)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    y[:2] = (y[:2] + 1) % 10
    return x, y


# -- L2 PGD --------------------------------------------------------------------------------------
def ref_start(seed: int, index: int, shape: tuple[int, ...], eps: float) -> torch.Tensor:
    """Seeded start of image ``index``: sha256 seed, Gaussian direction, radius eps·u^(1/d)."""
    u32 = int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "little")
    gen = torch.Generator().manual_seed(u32)
    g = torch.randn(shape, generator=gen)
    u = torch.rand((1,), generator=gen)
    return g / g.norm() * eps * u ** (1.0 / g.numel())


def ref_l2_pgd(model, x, y, eps, step, steps, seed, index=0):
    """Per-image L2 PGD on the CW loss, written image by image (no batching tricks)."""
    out = []
    for i in range(len(x)):
        xi, yi = x[i:i + 1], y[i:i + 1]
        delta = torch.clamp(xi + ref_start(seed, index + i, tuple(xi.shape[1:]), eps), 0, 1) - xi
        for _ in range(steps):
            delta = delta.detach().requires_grad_(True)
            z = model(xi + delta)
            other = z.clone()
            other[0, yi] = -float("inf")
            obj = -torch.clamp(z[0, yi] - other.max(), min=0).sum()
            (g,) = torch.autograd.grad(obj, delta)
            with torch.no_grad():
                gn = g.norm()
                delta = delta + step * g / (gn + 1e-12)
                dn = delta.norm()
                if dn > eps:
                    delta = delta * (eps / dn)
                delta = torch.clamp(xi + delta, 0, 1) - xi
        out.append((xi + delta).detach())
    return torch.cat(out)


def test_l2_pgd_matches_reimplementation():
    model = tiny_net().eval().requires_grad_(False)
    x, y = batch(model)
    steps, step, seed = 3, 2.5 * EPS / 3, 5
    out = attack_batch(model, x, y, index=10, seed=seed, loss="cw", eps=EPS, step_size=step,
                       steps=steps, norm="l2")
    ref = ref_l2_pgd(model, x, y, EPS, step, steps, seed, index=10)
    d = float((out.x_adv - ref).abs().max())
    print(f"\nL2 PGD: max|Δx_adv| {d:.2e}")
    assert d <= TOL
    norms = (out.x_adv - x).flatten(1).norm(dim=1)
    assert float(norms.max()) <= EPS + 1e-5 and 0 <= float(out.x_adv.min())
    with torch.no_grad():
        ref_robust = (model(x).argmax(1) == y) & (model(ref).argmax(1) == y)
    assert torch.equal(out.robust, ref_robust)


def test_l2_pgd_defaults_and_keys():
    s = AttackSettings(attack="pgd-cw", norm="l2").resolved(100)
    assert (s.eps, s.steps, s.step_size) == (0.5, 40, pytest.approx(2.5 * 0.5 / 40))
    from advscale.attacks.settings import settings_key

    linf = AttackSettings(attack="pgd-cw").resolved(100)
    assert linf.norm == "linf" and linf.eps == pytest.approx(8 / 255)
    k2 = settings_key("c", "d", s, "advscale", "x")
    k2b = settings_key("c", "d", AttackSettings(attack="pgd-cw", norm="l2", eps=0.5,
                                                step_size=s.step_size).resolved(100),
                       "advscale", "x")
    assert k2 == k2b != settings_key("c", "d", linf, "advscale", "x")


# -- L2 AutoAttack -------------------------------------------------------------------------------
@pytest.mark.parametrize("attack", ["aa-standard", "aa-rand"])
def test_l2_autoattack_matches_fra31_called_directly(attack):
    pyaa = pytest.importorskip("pyautoattack")
    from advscale.attacks.chunks import attack_chunk

    model = tiny_net().eval().requires_grad_(False)
    x, y = batch(model)
    seed, bs = 3, 4
    s = AttackSettings(attack=attack, norm="l2", eps=AA_EPS, n=len(x), batch_size=bs,
                       chunk_size=len(x), seed=seed).resolved(len(x))
    images = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    xq = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # what advscale attacks
    ours = attack_chunk(model, images, y.numpy(), s, 0, "cpu")

    version = attack.split("-")[1]
    torch.manual_seed(seed)
    np.random.seed(seed)
    aa = pyaa.AutoAttack(model, norm="L2", eps=AA_EPS, seed=seed, version=version, device="cpu")
    x_adv, y_adv = aa.run_standard_evaluation(xq.contiguous(), y, batch_size=bs)
    with torch.no_grad():
        clean_ok = model(xq).argmax(1) == y
    ref_robust = (clean_ok & (y_adv == y)).numpy()
    print(f"\n{attack} L2: advscale robust {ours.robust.astype(int)}, fra31 "
          f"{ref_robust.astype(int)}")
    assert np.array_equal(ours.robust, ref_robust)
    assert 0 < ours.robust.sum() < clean_ok.sum(), "the test needs robust and broken images"
    broken = ~ours.robust & clean_ok.numpy()
    assert np.array_equal(ours.pred_adv[broken], y_adv.numpy()[broken])
    dist = torch.from_numpy(ours.x_adv).permute(0, 3, 1, 2) - xq
    assert float(dist.flatten(1).norm(dim=1).max()) <= AA_EPS + 1e-4
    assert list(ours.per_attack_robust)[0] == "clean"
    assert ours.robust_correct == list(ours.per_attack_robust.values())[-1]


# -- TRADES under L2 -----------------------------------------------------------------------------
def ref_trades_l2(model, x, y, gen_seed, eps, step, steps, beta=5.0, smoothing=0.1):
    """TRADES with an L2 KL attack in the reference batch-norm mode (batch statistics, running
    ones untouched) from a uniform start in the ball, then the loss in train mode."""
    gen = torch.Generator().manual_seed(gen_seed)
    g = torch.randn(x.shape, generator=gen)
    u = torch.rand((x.shape[0],), generator=gen)
    d = g[0].numel()
    start = torch.stack([g[i] / g[i].norm() * eps * u[i] ** (1 / d) for i in range(len(x))])
    model.train()
    _track_stats(model, False)
    p_nat = F.softmax(model(x), 1).detach()
    x_adv = torch.clamp(x + start, 0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(x_adv), 1), p_nat, reduction="batchmean")
        (grad,) = torch.autograd.grad(kl, x_adv)
        with torch.no_grad():
            norms = torch.stack([gi.norm() for gi in grad]).view(-1, 1, 1, 1)
            x_adv = x_adv + step * grad / (norms + 1e-12)
            delta = x_adv - x
            dn = torch.stack([di.norm() for di in delta]).view(-1, 1, 1, 1)
            delta = delta * torch.clamp(eps / dn, max=1.0)
            x_adv = torch.clamp(x + delta, 0, 1)
    return ref_trades_outer(model, x, x_adv, y, beta, smoothing), x_adv.detach()


def test_trades_l2_step_matches_reimplementation():
    from advscale.attacks.norms import default_step_size
    from advscale.attacks.pgd import pgd_l2
    from advscale.training.losses import AttackConfig, trades_step_loss

    ours = tiny_net(seed=2, bn=True)
    ref = copy.deepcopy(ours)
    x, y = batch(tiny_net(seed=2), n=16, seed=4)
    steps = 5
    step = default_step_size("l2", EPS, steps)
    assert step == pytest.approx(2.5 * EPS / steps)
    captured = []

    def attack(*args, **kwargs):
        captured.append(pgd_l2(*args, **kwargs))
        return captured[-1]

    ours.train()
    out = trades_step_loss(ours, x, y, AttackConfig(eps=EPS, step_size=step, steps=steps,
                                                    norm="l2"),
                           beta=5.0, label_smoothing=0.1,
                           generator=torch.Generator().manual_seed(9), attack_fn=attack)
    loss_ref, x_ref = ref_trades_l2(ref, x, y, 9, EPS, step, steps)
    out.loss.backward()
    loss_ref.backward()
    d_loss = abs(float(out.loss.detach()) - float(loss_ref.detach()))
    d_x = float((captured[0] - x_ref).abs().max())
    d_grad = max(float((p.grad - q.grad).abs().max())
                 for p, q in zip(ours.parameters(), ref.parameters(), strict=True))
    print(f"\nTRADES-L2: |Δloss| {d_loss:.2e}, max|Δx_adv| {d_x:.2e}, max|Δgrad| {d_grad:.2e}")
    assert d_loss <= TOL and d_x <= TOL and d_grad <= TOL
    # the default attack of an L2 config is L2 PGD (same numbers without attack_fn)
    again = copy.deepcopy(ref)
    ours2 = trades_step_loss(again, x, y, AttackConfig(eps=EPS, step_size=step, steps=steps,
                                                       norm="l2"),
                             generator=torch.Generator().manual_seed(9))
    assert abs(float(ours2.loss.detach()) - float(loss_ref.detach())) < 1e-3


def test_pgd_at_l2_step_matches_reimplementation():
    """PGD-AT under L2 (CE attack in the reference batch-norm mode, label-smoothed CE on the
    adversarial batch) against a re-implementation with the same start draws."""
    from advscale.training.losses import AttackConfig, pgd_at_step_loss

    ours = tiny_net(seed=3, bn=True)
    ref = copy.deepcopy(ours)
    x, y = batch(tiny_net(seed=3), n=16, seed=6)
    steps, step = 4, 2.5 * EPS / 4
    ours.train()
    out = pgd_at_step_loss(ours, x, y, AttackConfig(eps=EPS, step_size=step, steps=steps,
                                                    norm="l2"),
                           label_smoothing=0.1, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(x.shape, generator=gen)
    u = torch.rand((x.shape[0],), generator=gen)
    d = g[0].numel()
    delta = torch.stack([g[i] / g[i].norm() * EPS * u[i] ** (1 / d) for i in range(len(x))])
    ref.train()
    _track_stats(ref, False)
    x_adv = torch.clamp(x + delta, 0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(ref(x_adv), y), x_adv)
        with torch.no_grad():
            gn = torch.stack([gi.norm() for gi in grad]).view(-1, 1, 1, 1)
            dl = x_adv + step * grad / (gn + 1e-12) - x
            dn = torch.stack([di.norm() for di in dl]).view(-1, 1, 1, 1)
            x_adv = torch.clamp(x + dl * torch.clamp(EPS / dn, max=1.0), 0, 1)
    _track_stats(ref, True)
    loss_ref = F.cross_entropy(ref(x_adv.detach()), y, label_smoothing=0.1)
    out.loss.backward()
    loss_ref.backward()
    d_loss = abs(float(out.loss.detach()) - float(loss_ref.detach()))
    d_grad = max(float((p.grad - q.grad).abs().max())
                 for p, q in zip(ours.parameters(), ref.parameters(), strict=True))
    print(f"\nPGD-AT-L2: |Δloss| {d_loss:.2e}, max|Δgrad| {d_grad:.2e}")
    assert d_loss <= TOL and d_grad <= TOL


def test_train_config_l2_defaults():
    from advscale.training.config import TrainConfig

    cfg = TrainConfig(data="a.h5", eval_data="b.h5", samples=100, norm="l2").resolved()
    assert (cfg.eps, cfg.step_size) == (0.5, pytest.approx(0.125))  # eps/4 at 10 steps
    assert cfg.eval_step_size == pytest.approx(2.5 * 0.5 / 40)
    linf = TrainConfig(data="a.h5", eval_data="b.h5", samples=100).resolved()
    assert (linf.norm, linf.eps, linf.step_size, linf.eval_step_size) == (
        "linf", pytest.approx(8 / 255), pytest.approx(2 / 255), pytest.approx(2 / 255))
    from advscale.errors import AdvscaleError

    with pytest.raises(AdvscaleError, match="norm"):
        TrainConfig(data="a.h5", eval_data="b.h5", samples=100, norm="l1").resolved()
    with pytest.raises(AdvscaleError, match="eps"):
        TrainConfig(data="a.h5", eval_data="b.h5", samples=100, eps=2.0).resolved()


# -- records: threat models are never mixed silently ---------------------------------------------
def _eval_rec(run_id: str, norm: str | None, eps: float | None) -> dict:
    rec = {"kind": "train.eval", "schema": 3, "run_id": run_id, "model": "wrn-10-1",
           "params": 1000, "samples_seen": 100, "eps": eps, "robust_acc": 0.3}
    if norm is not None:
        rec["norm"] = norm
    return rec


def test_runs_table_refuses_mixed_threat_models():
    from advscale.errors import AdvscaleError
    from advscale.records.runs import build_runs

    one = build_runs([_eval_rec("a", None, 8 / 255), _eval_rec("b", "linf", 8 / 255),
                      _eval_rec("c", "linf", None)])  # schema-2 records are L∞; null eps fits
    assert [r.threat_model[0] for r in one.runs.values()] == ["linf"] * 3
    with pytest.raises(AdvscaleError) as e:
        build_runs([_eval_rec("a", "linf", 8 / 255), _eval_rec("b", "l2", 0.5),
                    _eval_rec("c", "l2", 0.5)])
    msg = str(e.value)
    assert "linf eps=8/255 (1 run: a)" in msg and "l2 eps=0.5 (2 runs: b, c)" in msg
    with pytest.raises(AdvscaleError, match="4/255"):
        build_runs([_eval_rec("a", "linf", 8 / 255), _eval_rec("b", "linf", 4 / 255)])
    # an L2 attack record joined to an L∞ run is not read as the run's robustness
    attack = {"kind": "attack", "run_id": "a", "attack": "aa-standard", "robust_acc": 0.9}
    t = build_runs([_eval_rec("a", "linf", 8 / 255), {**attack, "norm": "l2", "eps": 0.5},
                    {**attack, "robust_acc": 0.2}])
    assert t.runs["a"].attack_acc("aa-standard") == 0.2
    t = build_runs([_eval_rec("a", "linf", 8 / 255), {**attack, "norm": "l2", "eps": 0.5}])
    assert t.runs["a"].attack_acc("aa-standard") is None


def test_schema_3_norm_rules():
    from advscale.records.schemas import _threat_model_rule

    assert _threat_model_rule({"eps": 0.5, "norm": "l2"}) is None
    assert _threat_model_rule({"eps": 0.5}) is None and _threat_model_rule({"eps": 2.0})
    assert "norm" in _threat_model_rule({"eps": 0.5, "norm": "l1"})


def test_train_l2_tiny_run_records_its_threat_model(tmp_path):
    """`advscale train --norm l2` at toy size: TRADES with L2 PGD, train.eval under L2 (records
    validated against schema 3 by the suite's strict mode), checkpoint metadata names it."""
    from conftest import make_h5

    from advscale.api import train
    from advscale.models.checkpoint import read_checkpoint_metadata

    data, test = make_h5(tmp_path / "train.h5", 64), make_h5(tmp_path / "test.h5", 16, seed=1)
    recs = train(str(data), tmp_path / "run", eval_data=str(test), samples=32,
                 model="wrn-10-1", pgd_steps=1, batch_size=16, lr=0.1, eval_n=16,
                 eval_steps=1, eval_every=0, norm="l2", eps=0.5, progress=False,
                 device="cpu")
    last = recs[-1]
    assert (last["norm"], last["eps"]) == ("l2", 0.5)
    assert read_checkpoint_metadata(tmp_path / "run" / "last.safetensors")["norm"] == "l2"
