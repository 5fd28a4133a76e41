"""advscale's defaults against the papers' reference definitions (issue 14; docs/fidelity.md).

Each test holds its own re-implementation of the reference behaviour, written here from the
references' documented semantics (Bartoldson et al.'s Adversarial-Robustness-Limits:
``gowal21uncovering/utils/watrain.py::Linf_PGD_40`` with ``core/attacks/utils.py::CWLoss``,
``gowal21uncovering/utils/trades.py::trades_loss``, ``core/utils/train.py::adversarial_loss``;
DM-Improves-AT ``core/models/wideresnetwithswish.py``), and asserts that advscale computes the
same numbers: PGD-40-CW adversarial loss and per-image outcomes, TRADES loss / adversarial
examples / gradients in the reference batch-norm mode, and WRN logits after mapping a
DeepMind-style state dict. The measured deviations are printed (``pytest -s``).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advscale.attacks.pgd import pgd_linf
from advscale.attacks.robustness import attack_batch, start_noise
from advscale.models import create_model
from advscale.models.dm_keys import dm_to_advscale
from advscale.training.losses import AttackConfig, pgd_at_step_loss, trades_step_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS, STEP = 8 / 255, 2 / 255
TOL = 1e-6


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


# -- reference re-implementations ---------------------------------------------------------------
def ref_cw_objective(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference's CW loss, summed: -clamp(z_y - max_{j≠y} z_j, 0) via a one-hot mask."""
    onehot = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    real = (onehot * logits).sum(1)
    other = ((1 - onehot) * logits - onehot * 1e4).max(1)[0]
    return -torch.clamp(real - other, min=0).sum()


def ref_linf_pgd(model, x, y, objective, start, steps):
    """Reference PGD on delta (perturb_iterative): given start, sign step, eps box, [0, 1]."""
    delta = (torch.clamp(x + start, 0, 1) - x).detach()
    for _ in range(steps):
        delta.requires_grad_(True)
        obj = objective(model(x + delta), y)
        (g,) = torch.autograd.grad(obj, delta)
        with torch.no_grad():
            delta = torch.clamp(delta + STEP * g.sign(), -EPS, EPS)
            delta = torch.clamp(x + delta, 0, 1) - x
    return torch.clamp(x + delta, 0, 1).detach()


def ref_pgd40_eval(model, x, y, start, steps):
    """Linf_PGD_40 with the CW loss: eval mode; adv_loss = CE_sum + 5 · KL_sum over images / n."""
    model.eval()
    x_adv = ref_linf_pgd(model, x, y, ref_cw_objective, start, steps)
    with torch.no_grad():
        zc, za = model(x), model(x_adv)
    ce = F.cross_entropy(zc, y, reduction="none")  # nn.CrossEntropyLoss, per image
    kl = F.kl_div(F.log_softmax(za, 1), F.softmax(zc, 1), reduction="none").sum(1)  # KLDivLoss
    return x_adv, ce + 5.0 * kl, za.argmax(1) == y, zc.argmax(1) == y


def _track_stats(model: nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.track_running_stats = on


def ref_trades_outer(model, x, x_adv, y, beta, smoothing):
    """The TRADES loss once the attack has run: label-smoothed CE on the clean images plus β KL
    of the adversarial prediction from the clean one, both forwards in train mode updating the
    running statistics."""
    _track_stats(model, True)
    x_adv = x_adv.detach()
    z_nat, z_adv = model(x), model(x_adv)
    logp = F.log_softmax(z_nat, 1)
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    smooth_ce = ((1 - smoothing) * nll - smoothing * logp.mean(1)).mean()
    robust = F.kl_div(F.log_softmax(z_adv, 1), F.softmax(z_nat, 1), reduction="batchmean")
    return smooth_ce + beta * robust


def ref_trades(model, x, y, u, steps, beta=5.0, smoothing=0.1):
    """Gowal/Rebuffi TRADES: train mode, running stats frozen for the clean target and the
    attack (batch statistics), then both loss forwards in train mode updating them."""
    model.train()
    _track_stats(model, False)
    x_adv = torch.clamp(x + (u * 2 - 1) * EPS, 0, 1)
    p_nat = F.softmax(model(x), 1).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(x_adv), 1), p_nat, reduction="batchmean")
        (g,) = torch.autograd.grad(kl, x_adv)
        x_adv = x_adv.detach() + STEP * g.sign()
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0, 1)
    return ref_trades_outer(model, x, x_adv, y, beta, smoothing), x_adv.detach()


def ref_madry(model, x, y, u, steps, bn_eval: bool, smoothing=0.1):
    """PGD-AT: CE-PGD (eval mode as core/utils/train.py, or batch stats without update), then
    label-smoothed CE on the adversarial batch in train mode."""
    if bn_eval:
        model.eval()
    else:
        model.train()
        _track_stats(model, False)

    def ce_sum(z, t):
        return F.cross_entropy(z, t, reduction="sum")

    x_adv = ref_linf_pgd(model, x, y, ce_sum, (u * 2 - 1) * EPS, steps)
    model.train()
    _track_stats(model, True)
    return F.cross_entropy(model(x_adv), y, label_smoothing=smoothing), x_adv


class RefDMBlock(nn.Module):
    """A DeepMind-style pre-activation block: explicit padding, conv_0 unpadded."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.batchnorm_0 = nn.BatchNorm2d(cin, momentum=0.01)
        self.relu_0 = nn.SiLU()
        self.conv_0 = nn.Conv2d(cin, cout, 3, stride, 0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(cout, momentum=0.01)
        self.relu_1 = nn.SiLU()
        self.conv_1 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=False) if cin != cout else None
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu_0(self.batchnorm_0(x))
        pad = (1, 1, 1, 1) if self.stride == 1 else (0, 1, 0, 1)
        out = self.conv_1(self.relu_1(self.batchnorm_1(self.conv_0(F.pad(a, pad)))))
        return out + (self.shortcut(a) if self.shortcut is not None else x)


class RefDMGroup(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(*[RefDMBlock(cin if i == 0 else cout, cout,
                                                stride if i == 0 else 1) for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class RefDMWRN(nn.Module):
    """The DeepMind-style WRN (key names init_conv, layer.g.block.i.*, batchnorm, logits)."""

    def __init__(self, depth: int, width: int, num_classes: int = 10) -> None:
        super().__init__()
        n = (depth - 4) // 6
        ch = [16, 16 * width, 32 * width, 64 * width]
        self.mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
        self.std = torch.tensor([0.2471, 0.2435, 0.2616]).view(3, 1, 1)
        self.init_conv = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        self.layer = nn.Sequential(RefDMGroup(n, ch[0], ch[1], 1), RefDMGroup(n, ch[1], ch[2], 2),
                                   RefDMGroup(n, ch[2], ch[3], 2))
        self.batchnorm = nn.BatchNorm2d(ch[3], momentum=0.01)
        self.relu = nn.SiLU()
        self.logits = nn.Linear(ch[3], num_classes)
        self.num_channels = ch[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(self.init_conv((x - self.mean) / self.std))
        out = F.avg_pool2d(self.relu(self.batchnorm(out)), 8)
        return self.logits(out.view(-1, self.num_channels))


# -- helpers -------------------------------------------------------------------------------------
def _randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial batch-norm affine parameters and running statistics."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))


def _model_and_batch(n: int = 16, correct: int = 12):
    """A random-weight WRN-10-1 and ``n`` images: the first ``correct`` labelled with the clean
    prediction (attackable), the rest with another class (clean-misclassified)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = create_model("wrn-10-1")
    _randomise_bn(model, gen)
    x = torch.rand(n, 3, 32, 32, generator=gen)
    with torch.no_grad():
        pred = model.eval()(x).argmax(1)
    y = pred.clone()
    y[correct:] = (pred[correct:] + 1) % 10
    return model, x, y


# -- PGD-40 on the CW loss ------------------------------------------------------------------------
def test_pgd40_cw_matches_reference():
    model, x, y = _model_and_batch()
    steps = 40
    u = start_noise(0, 0, len(x), tuple(x.shape[1:]))
    out = attack_batch(model, x, y, index=0, seed=0, loss="cw", steps=steps)
    x_ref, loss_ref, adv_ok_ref, clean_ok_ref = ref_pgd40_eval(model, x, y, (u * 2 - 1) * EPS,
                                                               steps)
    d_x, d_loss = _maxdiff(out.x_adv, x_ref), _maxdiff(out.adv_loss, loss_ref)
    d_mean = abs(float(out.adv_loss.double().mean()) - float(loss_ref.double().mean()))
    print(f"\nPGD-40-CW: max|Δx_adv| {d_x:.2e}, max|Δadv_loss| per image {d_loss:.2e}, "
          f"|Δmean adv_loss| {d_mean:.2e}")
    assert d_x <= TOL and d_loss <= TOL and d_mean <= TOL
    adv_ok = out.logits_adv.argmax(1) == y
    assert torch.equal(adv_ok, adv_ok_ref)  # per-image outcome
    assert torch.equal(out.clean_correct, clean_ok_ref)
    assert torch.equal(out.robust, clean_ok_ref & adv_ok_ref)
    assert 0 < int(clean_ok_ref.sum()) < len(y)  # both regimes are exercised


def test_unclamped_margin_is_another_attack():
    """``cw-margin`` keeps pushing misclassified images: another x_adv and adversarial loss."""
    model, x, y = _model_and_batch()
    clamped = attack_batch(model, x, y, index=0, loss="cw", steps=10)
    margin = attack_batch(model, x, y, index=0, loss="cw-margin", steps=10)
    wrong = ~clamped.clean_correct
    assert _maxdiff(clamped.x_adv[wrong], margin.x_adv[wrong]) > 1e-3
    assert float(margin.adv_loss[wrong].mean()) > float(clamped.adv_loss[wrong].mean())


def test_clamped_cw_gradient_vanishes_when_misclassified():
    from advscale.attacks.pgd import attack_loss

    z = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]], requires_grad=True)
    y = torch.tensor([0, 0])
    obj = attack_loss(z, y, "cw")
    assert float(obj.detach()) == pytest.approx(-1.0)  # image 0: -(2 - 1); image 1 misclassified: 0
    (g,) = torch.autograd.grad(obj, z)
    assert g[0].tolist() == [-1.0, 1.0, 0.0] and g[1].tolist() == [0.0, 0.0, 0.0]
    assert float(ref_cw_objective(z, y).detach()) == float(obj.detach())


# -- TRADES in the reference batch-norm mode ------------------------------------------------------
def _advscale_trades(model, x, y, seed, steps, bn):
    captured = []

    def attack(*args, **kwargs):
        captured.append(pgd_linf(*args, **kwargs))
        return captured[-1]

    model.train()
    out = trades_step_loss(model, x, y, AttackConfig(steps=steps, bn=bn), beta=5.0,
                           label_smoothing=0.1, generator=torch.Generator().manual_seed(seed),
                           attack_fn=attack)
    return out.loss, captured[0]


def _bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def test_trades_matches_reference_bn_mode():
    model, x, y = _model_and_batch()
    ours, ref = model, copy.deepcopy(model)
    steps, seed = 10, 7
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
    loss_ref, x_ref = ref_trades(ref, x, y, u, steps)
    loss, x_adv = _advscale_trades(ours, x, y, seed, steps, "train-no-update")
    loss.backward()
    loss_ref.backward()
    d_loss = abs(float(loss.detach()) - float(loss_ref.detach()))
    d_x = _maxdiff(x_adv, x_ref)
    d_grad = max(_maxdiff(p.grad, q.grad) for p, q in zip(ours.parameters(), ref.parameters(),
                                                           strict=True))
    rel_grad = max(_maxdiff(p.grad, q.grad) / max(float(q.grad.abs().max()), 1e-12)
                   for p, q in zip(ours.parameters(), ref.parameters(), strict=True))
    bn_a, bn_b = _bn_state(ours), _bn_state(ref)
    d_bn = max(_maxdiff(bn_a[k].float(), bn_b[k].float()) for k in bn_a)
    print(f"\nTRADES: |Δloss| {d_loss:.2e}, max|Δx_adv| {d_x:.2e}, max|Δgrad| {d_grad:.2e} "
          f"(relative {rel_grad:.2e}), max|Δrunning stats| {d_bn:.2e}")
    assert d_loss <= TOL and d_x <= TOL and d_grad <= TOL and d_bn <= TOL
    # the two loss forwards (and only they) updated the running statistics
    assert all(int(v) == 2 for k, v in bn_a.items() if k.endswith("num_batches_tracked"))


def test_trades_eval_bn_mode_differs_from_reference():
    """Zhang et al.'s eval mode is a different attack (the reason it is not the default)."""
    model, x, y = _model_and_batch()
    ref = copy.deepcopy(model)
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(7))
    loss_ref, x_ref = ref_trades(ref, x, y, u, 10)
    loss, x_adv = _advscale_trades(model, x, y, 7, 10, "eval")
    assert _maxdiff(x_adv, x_ref) > 1e-3 or abs(float(loss.detach() - loss_ref.detach())) > 1e-4


@pytest.mark.parametrize("bn", ["train-no-update", "eval"])
def test_pgd_at_matches_reference(bn):
    model, x, y = _model_and_batch()
    ref = copy.deepcopy(model)
    seed, steps = 3, 5
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
    loss_ref, _ = ref_madry(ref, x, y, u, steps, bn_eval=bn == "eval")
    model.train()
    out = pgd_at_step_loss(model, x, y, AttackConfig(steps=steps, bn=bn), label_smoothing=0.1,
                           generator=torch.Generator().manual_seed(seed))
    out.loss.backward()
    loss_ref.backward()
    assert abs(float(out.loss.detach()) - float(loss_ref.detach())) <= TOL
    assert max(_maxdiff(p.grad, q.grad) for p, q in zip(model.parameters(), ref.parameters(),
                                                        strict=True)) <= TOL


# -- the DeepMind WRN ----------------------------------------------------------------------------
@pytest.mark.parametrize(("depth", "width"), [(16, 2), (28, 10)])
def test_dm_state_dict_gives_dm_logits(depth, width):
    torch.manual_seed(depth)
    ref = RefDMWRN(depth, width)
    _randomise_bn(ref, torch.Generator().manual_seed(width))
    ref.eval()
    ours = create_model(f"wrn-{depth}-{width}").eval()  # padding "dm" is the default
    ours.load_state_dict(dm_to_advscale(ref.state_dict()))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z_ref, z = ref(x), ours(x)
        sym = create_model(f"wrn-{depth}-{width}", padding="symmetric").eval()
        sym.load_state_dict(ours.state_dict())
        z_sym = sym(x)
    d, d_sym = _maxdiff(z, z_ref), _maxdiff(z_sym, z_ref)
    print(f"\nWRN-{depth}-{width}: max|Δlogits| dm {d:.2e}, symmetric {d_sym:.2e}")
    assert d <= 1e-5
    assert d_sym > 1e-4  # the padding matters: symmetric padding gives other logits
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
