"""Training building blocks: schedule, EMA, optimizer groups, augmentation, config, state, FID,
evaluation and the train.eval schema (fast, no full runs)."""

from __future__ import annotations

import copy
import errno
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from advscale.errors import AdvscaleError
from advscale.training.config import TrainConfig, merge_for_resume, paper_batch_lr

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- schedule ----------------------------------------------------------------------------------
@pytest.mark.parametrize("total", [5, 7, 40, 157])
def test_one_cycle_matches_torch(total):
    from advscale.training.schedule import OneCycleCosine

    sched = OneCycleCosine(0.3, total, warmup=0.25)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.3)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=total, pct_start=0.25,
                                              cycle_momentum=False)
    for t in range(total):
        assert math.isclose(sched(t), opt.param_groups[0]["lr"], rel_tol=1e-9, abs_tol=1e-15), t
        opt.step()
        if t < total - 1:
            ref.step()


def test_schedule_shape():
    from advscale.training.schedule import OneCycleCosine

    s = OneCycleCosine(0.2, 100, warmup=0.1)
    lrs = [s(t) for t in range(100)]
    peak = int(np.argmax(lrs))
    assert math.isclose(max(lrs), 0.2) and 8 <= peak <= 10
    assert lrs[0] == pytest.approx(0.2 / 25)
    assert lrs[-1] == pytest.approx(0.2 / 25 / 1e4)
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1 : peak + 1], strict=True))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :], strict=False))
    no_warm = OneCycleCosine(0.2, 10, warmup=0.0)
    assert no_warm(0) == pytest.approx(0.2)


def test_paper_batch_lr():
    assert paper_batch_lr(20_000) == (1024, 0.3)
    assert paper_batch_lr(10_000_000) == (1024, 0.3)
    assert paper_batch_lr(10_000_001) == (2048, 0.2)
    assert paper_batch_lr(200_000_000) == (2048, 0.2)
    assert paper_batch_lr(300_000_000) == (2048, 0.1)
    cfg = TrainConfig(data="a.h5", eval_data="b.h5", samples=50_000_000).resolved()
    assert (cfg.batch_size, cfg.lr) == (2048, 0.2)
    assert cfg.eval_every == 5_000_000 and cfg.checkpoint_every == 5_000_000
    assert cfg.total_steps == math.ceil(50_000_000 / 2048)


# -- EMA ---------------------------------------------------------------------------------------
def test_ema_warmup_decay_and_buffers():
    from advscale.models.averaging import EMA

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.995, warmup_steps=2)
    assert ema.current_decay(1) == 0.0 and ema.current_decay(2) == 0.0
    assert ema.current_decay(3) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    assert ema.current_decay(10_000) == pytest.approx(0.995)
    w0 = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(7.0)
    ema.update(model, 1)  # warm-up: copy
    assert torch.equal(ema.module[0].weight, w0 + 1)
    assert torch.equal(ema.module[1].running_mean, torch.full((2,), 7.0))
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model, 3)  # decay 0.1
    assert torch.allclose(ema.module[0].weight, 0.1 * (w0 + 1) + 0.9 * (w0 + 2))
    assert not any(p.requires_grad for p in ema.module.parameters())


# -- optimizer ---------------------------------------------------------------------------------
def test_no_weight_decay_on_norms_and_biases():
    from advscale.models import create_model
    from advscale.training.optim import make_sgd

    m = create_model("wrn-10-1")
    opt = make_sgd(m, lr=0.1, weight_decay=5e-4)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    n_bn = sum(2 for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d))
    assert len(no_decay["params"]) == n_bn + 1  # BN scales/shifts + the classifier bias
    assert decay["nesterov"] and decay["momentum"] == 0.9


# -- augmentation ------------------------------------------------------------------------------
def test_random_crop_flip_matches_reference():
    from advscale.training.augment import random_crop_flip, to_model_input

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8))
    g = torch.Generator().manual_seed(5)
    out = random_crop_flip(x, 4, True, generator=g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    # replay the same random draws and crop each image by hand
    g = torch.Generator().manual_seed(5)
    oy = torch.randint(0, 9, (16,), generator=g)
    ox = torch.randint(0, 9, (16,), generator=g)
    fl = torch.rand(16, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (0, 0, 4, 4, 4, 4))
    for i in range(16):
        ref = padded[i, oy[i] : oy[i] + 32, ox[i] : ox[i] + 32]
        if fl[i]:
            ref = ref.flip(1)
        assert torch.equal(out[i], ref), i
    assert fl.any() and (~fl).any()
    assert torch.equal(random_crop_flip(x, 0, False), x)
    f = to_model_input(x)
    assert f.shape == (16, 3, 32, 32) and f.dtype == torch.float32
    assert 0 <= float(f.min()) and float(f.max()) <= 1
    assert to_model_input(x, channels_last=True).is_contiguous(memory_format=torch.channels_last)


# -- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eps": 0.0}, "eps"),
        ({"eps": 1.5}, "eps"),
        ({"loss": "mart"}, "unknown loss"),
        ({"samples": 0}, "samples"),
        ({"data": ""}, "data is required"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"lr": -1.0}, "lr"),
        ({"attack_bn": "train"}, "unknown attack_bn"),
        ({"eval_loss": "dlr"}, "unknown eval_loss"),
        ({"model_kwargs": ["x"]}, "model_kwargs must map"),
    ],
)
def test_config_validation(change, message):
    base = {"data": "a.h5", "eval_data": "b.h5", "samples": 100}
    base.update(change)
    with pytest.raises(AdvscaleError, match=message):
        TrainConfig(**base).resolved()


def test_resume_merge_rules(tmp_path):
    saved = TrainConfig(data="a.h5", eval_data="b.h5", samples=100, run_id="r").resolved()
    saved.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == saved
    same = merge_for_resume(saved, {"samples": 100, "workers": 3})
    assert same.workers == 3 and same.samples == 100
    with pytest.raises(AdvscaleError, match="samples=200"):
        merge_for_resume(saved, {"samples": 200})


def test_reference_defaults_and_legacy_configs(tmp_path):
    """New runs use the reference's definitions; a config.json that predates them resumes with
    what it ran (symmetric padding, eval-mode attack BN, unclamped CW evaluation)."""
    import json

    from advscale.attacks.pgd import BN_MODES, DEFAULT_ATTACK_BN
    from advscale.models import create_model
    from advscale.models.wrn import PADDINGS
    from advscale.training.config import ATTACK_BN_MODES, EVAL_LOSSES
    from advscale.training.config import PADDINGS as CFG_PADDINGS

    cfg = TrainConfig(data="a.h5", eval_data="b.h5", samples=100).resolved()
    assert (cfg.padding, cfg.attack_bn, cfg.eval_loss) == (None, "train-no-update", "cw")
    with torch.device("meta"):  # None: the WRN family's default, dm
        assert create_model(cfg.model, **cfg.model_options()).padding == "dm"
    assert ATTACK_BN_MODES == BN_MODES and ATTACK_BN_MODES[0] == DEFAULT_ATTACK_BN
    assert CFG_PADDINGS == PADDINGS and EVAL_LOSSES[0] == "cw"
    old = cfg.to_dict()
    for k in ("padding", "attack_bn", "eval_loss"):
        del old[k]
    (tmp_path / "config.json").write_text(json.dumps(old))
    legacy = TrainConfig.load(tmp_path / "config.json")
    assert (legacy.padding, legacy.attack_bn, legacy.eval_loss) == ("symmetric", "eval",
                                                                      "cw-margin")


def test_attack_bn_modes_leave_running_stats():
    from advscale.attacks.pgd import attack_bn_mode
    from advscale.models import create_model

    torch.manual_seed(0)
    m = create_model("wrn-10-1").train()
    before = copy.deepcopy(m.state_dict())
    x = torch.rand(4, 3, 32, 32)
    bn = m.blocks[0].bn1
    with torch.no_grad():
        with attack_bn_mode(m, "train-no-update"):
            assert bn.training and not bn.track_running_stats
            z_batch = m(x)
        with attack_bn_mode(m, "eval"):
            assert not bn.training
            z_eval = m(x)
    assert bn.training and bn.track_running_stats  # restored
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.allclose(z_batch, z_eval)  # batch statistics vs running statistics
    m.eval()
    with attack_bn_mode(m, "train-no-update"):
        assert bn.training
    assert not bn.training  # an eval-mode model stays in eval mode
    with pytest.raises(ValueError, match="batch-norm mode"):
        attack_bn_mode(m, "frozen")


# -- state -------------------------------------------------------------------------------------
def _tiny_training_objects():
    from advscale.models import create_model
    from advscale.models.averaging import EMA
    from advscale.training.optim import make_sgd

    torch.manual_seed(0)
    m = create_model("wrn-10-1")
    opt = make_sgd(m, lr=0.1)
    x = torch.rand(4, 3, 32, 32)
    m(x).sum().backward()
    opt.step()
    return m, EMA(m), opt


def test_state_roundtrip(tmp_path):
    from advscale.training.state import collect_state, read_state, restore_state, save_state

    m, ema, opt = _tiny_training_objects()
    tensors, meta = collect_state(m, ema.module, opt, {"counters": {"step": 3}})
    save_state(tmp_path, tensors, meta)
    expected_rand = torch.rand(3)
    m2, ema2, opt2 = _tiny_training_objects()
    with torch.no_grad():
        for p in m2.parameters():
            p.add_(1)
    t2, meta2 = read_state(tmp_path)
    torch.rand(100)  # move the RNG on
    restore_state(t2, meta2, m2, ema2.module, opt2)
    assert meta2["counters"]["step"] == 3
    for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    for k in s1["state"]:
        assert torch.equal(s1["state"][k]["momentum_buffer"], s2["state"][k]["momentum_buffer"])
    assert s1["param_groups"] == s2["param_groups"]
    assert torch.equal(torch.rand(3), expected_rand)  # the RNG continues where it was saved


def test_state_disk_full_keeps_previous(tmp_path, monkeypatch):
    from advscale.core import stfile
    from advscale.training import state as state_mod

    m, ema, opt = _tiny_training_objects()
    tensors, meta = state_mod.collect_state(m, ema.module, opt, {"counters": {"step": 1}})
    path = state_mod.save_state(tmp_path, tensors, meta)
    before = path.read_bytes()

    def full_disk(tensors, filename, metadata):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stfile, "save_file", full_disk)
    with pytest.raises(AdvscaleError,
                       match="(disk full|no space left).*previous file there is intact"):
        state_mod.save_state(tmp_path, tensors, meta)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.safetensors"]


def test_state_rejects_non_state_file(tmp_path):
    from advscale.training.state import read_state

    (tmp_path / "state.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(AdvscaleError, match="not a readable training state"):
        read_state(tmp_path)


# -- sources and FID ---------------------------------------------------------------------------
def test_source_fid_and_mixture_fid():
    from advscale.training.sources import describe_sources, mixture_fid, source_fid

    assert source_fid({"quality_metric": "fid", "quality_value": 1.82, "fid": 1.82}) == \
        (1.82, "fid")
    assert source_fid({"quality_metric": "fid_inception_n5000", "quality_value": "2.5"}) == \
        (2.5, "fid_inception_n5000")
    # any named quality metric flows, under its name (issue 17.1); a KID is not an FD
    assert source_fid({"quality_metric": "fd_pca64_n5000", "quality_value": 9.0}) == \
        (9.0, "fd_pca64_n5000")
    assert source_fid({"quality_metric": "kid", "quality_value": 0.1}) == (None, None)
    assert source_fid({"quality_metric": "fd_pca64_n5000", "quality_value": "nan"}) == \
        (None, None)
    assert source_fid({"source": "cifar10-train"}) == (None, None)
    srcs = describe_sources(
        ["real.h5", "a.h5", "b.h5"], [50_000, 100, 300], [1.0, 3.0, 1.0],
        [{"source": "cifar10-train"},
         {"source": "synthetic", "quality_metric": "fid", "quality_value": 2.0},
         {"source": "synthetic", "quality_metric": "fid", "quality_value": 6.0}])
    assert srcs[0] == {"path": "real.h5", "source": "cifar10-train", "weight": 1.0,
                       "n": 50_000, "fid": None, "fid_metric": None,
                       "comparable_to_published": None}
    assert srcs[1]["fid_metric"] == "fid" and srcs[1]["comparable_to_published"] is True
    proxy = describe_sources(["p.h5"], [10], None, [
        {"quality_metric": "fd_pca64_n2000", "quality_value": 130.7,
         "comparable_to_published": np.int64(0)}])
    assert proxy[0]["fid"] == 130.7 and proxy[0]["fid_metric"] == "fd_pca64_n2000"
    assert proxy[0]["comparable_to_published"] is False
    assert mixture_fid(srcs) == pytest.approx((3 * 2.0 + 1 * 6.0) / 4)
    union = describe_sources(["a.h5", "b.h5"], [100, 300], None,
                             [{"quality_metric": "fid", "quality_value": 2.0},
                              {"quality_metric": "fid", "quality_value": 6.0}])
    assert mixture_fid(union) == pytest.approx((100 * 2 + 300 * 6) / 400)  # by size
    assert mixture_fid(srcs[:1]) is None


# -- evaluation --------------------------------------------------------------------------------
def test_evaluate_robustness_matches_by_hand():
    from advscale.attacks.pgd import pgd_linf
    from advscale.attacks.robustness import start_noise
    from advscale.models import create_model
    from advscale.training.evaluate import evaluate_robustness

    torch.manual_seed(1)
    m = create_model("wrn-10-1").eval()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(10) % 10
    r = evaluate_robustness(m, imgs, labels, steps=2, batch_size=10, seed=0)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(labels)
    xa = pgd_linf(m, x, y, steps=2, loss="cw", noise=start_noise(0, 0, 10, (3, 32, 32)))
    with torch.no_grad():
        lc, la = m(x), m(xa)
    ce = torch.nn.functional.cross_entropy(lc, y)
    kl = (torch.softmax(lc, 1) * (torch.log_softmax(lc, 1) - torch.log_softmax(la, 1))).sum(1)
    assert r.n == 10
    assert r.clean_acc == pytest.approx(float((lc.argmax(1) == y).float().mean()))
    robust = (lc.argmax(1) == y) & (la.argmax(1) == y)  # correct clean and attacked
    assert r.robust_acc == pytest.approx(float(robust.float().mean()))
    assert r.adv_loss == pytest.approx(float(ce + 5 * kl.mean()), rel=1e-5)
    # batching does not change the numbers: image i's random start depends on (seed, i) only
    r2 = evaluate_robustness(m, imgs, labels, steps=2, batch_size=3, seed=0)
    assert r2.n == 10 and r2.clean_acc == r.clean_acc and r2.robust_acc == r.robust_acc
    assert r2.adv_loss == pytest.approx(r.adv_loss, rel=1e-6)


def test_losses_accept_attack_model():
    from advscale.models import create_model
    from advscale.training.losses import LOSSES, AttackConfig

    torch.manual_seed(0)
    m = create_model("wrn-10-1")
    x, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    for name, fn in LOSSES.items():
        m1, m2 = copy.deepcopy(m), copy.deepcopy(m)  # the loss forwards update BN statistics
        a = fn(m1, x, y, AttackConfig(steps=1), generator=torch.Generator().manual_seed(0))
        b = fn(m2, x, y, AttackConfig(steps=1), generator=torch.Generator().manual_seed(0),
               attack_model=m2)
        assert torch.equal(a.loss, b.loss), name


# -- schema ------------------------------------------------------------------------------------
def _documented_train_eval_fields() -> list[str]:
    text = (ROOT / "docs" / "formats.md").read_text()
    m = re.search(r"^### `train\.eval`\n(.*?)(?=^#{2,3} )", text + "\n## end",
                  re.S | re.M)
    assert m, "docs/formats.md has no train.eval section"
    return re.findall(r"^\| `([a-z_0-9]+)` \|", m.group(1), re.M)


def test_docs_match_schema():
    from advscale.records import SCHEMAS

    documented = _documented_train_eval_fields()
    assert set(SCHEMAS["train.eval"].by_name) <= set(documented)


# the train.eval validator's rules: tests/test_records.py::test_train_eval_schema_rules


def test_bn_momentum_warmup():
    from advscale.training.schedule import bn_momentum_at

    assert bn_momentum_at(0, 0.01) == 1.0
    assert bn_momentum_at(1, 0.01) == pytest.approx(9 / 11)
    assert bn_momentum_at(80, 0.01) == pytest.approx(0.1)
    assert bn_momentum_at(10_000, 0.01) == 0.01
    assert bn_momentum_at(10_000, 0.1) == 0.1
    ms = [bn_momentum_at(t, 0.01) for t in range(2000)]
    assert all(a >= b for a, b in zip(ms, ms[1:], strict=False))
