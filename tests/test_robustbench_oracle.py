"""RobustBench's own code as the oracle for every leaderboard layout advscale imports.

For each id of RobustBench's CIFAR-10 L∞ top 15 (and XCiT-S12) the test builds RobustBench's
constructor, fills every tensor (weights, BN statistics, MeanSparse buffers with non-zero
thresholds) with distinct random values, saves it in RobustBench's file layout
(``<dir>/cifar10/Linf/<id>.pt``, ensembles ``<id>.pt_m<i>.pt``), loads it through
``robustbench.utils.load_model`` and through ``advscale model import``, and compares logits.

Sizes: XCiT-S12 at its real size; the others at reduced depth/width (the constructors'
hard-coded sizes are swapped for small ones by patching the size arguments of RobustBench's own
classes; the code paths are RobustBench's). RobustBench's XCiT entry loads through timm with
``pretrained=True`` (a download); the test calls the same ``timm.create_model`` with
``checkpoint_path`` instead. BiT's constructor calls ``.cuda()``; the test makes that a no-op.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn


def _aliases() -> list[str]:
    """Put the modules robustbench imports by other names into sys.modules; the names added."""
    import pyautoattack

    added = []
    if "autoattack" not in sys.modules:  # robustbench imports `autoattack`
        sys.modules["autoattack"] = pyautoattack
        added.append("autoattack")
    try:
        import pkg_resources  # noqa: F401
    except ImportError:  # setuptools >= 81 dropped it; robustbench.loaders only needs this
        stub = types.ModuleType("pkg_resources")
        stub.resource_filename = lambda pkg, path: os.path.join(  # type: ignore[attr-defined]
            os.path.dirname(sys.modules[pkg].__file__), path)
        sys.modules["pkg_resources"] = stub
        added.append("pkg_resources")
    return added


def _drop(names: list[str]) -> None:
    for name in names:
        sys.modules.pop(name, None)


# The aliases live only while robustbench is imported and while this file's tests run: left in
# sys.modules, an `autoattack` alias would change other tests' AutoAttack backend.
_ADDED = _aliases()
try:
    rb_utils = pytest.importorskip("robustbench.utils")
    from robustbench.model_zoo import cifar10 as rb_cifar10  # noqa: E402
    from robustbench.model_zoo.architectures import (  # noqa: E402
        bit_rn,
        bit_rn_v2,
        comp_model,
        dm_rn,
        robust_resnet,
        robustarch_wide_resnet,
        sparsified_model,
    )
    from robustbench.model_zoo.architectures.dm_wide_resnet import (  # noqa: E402
        CIFAR10_MEAN,
        CIFAR10_STD,
        DMWideResNet,
        Swish,
    )
    from robustbench.model_zoo.enums import ThreatModel  # noqa: E402
finally:
    _drop(_ADDED)


@pytest.fixture(autouse=True)
def _robustbench_aliases():
    added = _aliases()
    yield
    _drop(added)


from advscale.models.robustbench import LEADERBOARD  # noqa: E402

TABLE = rb_cifar10.cifar_10_models[ThreatModel.Linf]
TOP15 = [e.id for e in LEADERBOARD.values() if e.rank is not None]
SMALL_DM = {"Bartoldson2024Adversarial_WRN-94-16": (16, 2, nn.SiLU),
            "Bartoldson2024Adversarial_WRN-82-8": (10, 3, nn.SiLU),
            "Wang2023Better_WRN-70-16": (10, 2, nn.SiLU),
            "Cui2023Decoupled_WRN-28-10": (16, 1, nn.SiLU),
            "Wang2023Better_WRN-28-10": (10, 1, nn.SiLU),
            "Rebuffi2021Fixing_70_16_cutmix_extra": (10, 2, Swish),
            "Gowal2021Improving_70_16_ddpm_100m": (16, 1, Swish),
            "Gowal2020Uncovering_70_16_extra": (10, 3, Swish),
            "Rebuffi2021Fixing_106_16_cutmix_ddpm": (22, 1, Swish)}
"""DeepMind-WRN ids at reduced (depth, width), each with the activation RobustBench uses."""
SMALL_RA = {"stem_width": 16, "depth": [2, 1, 1], "stage_width": [32, 48, 64]}
SMALL_A4 = {"channel_configs": [16, 32, 48, 40], "depth_configs": [2, 1, 1]}


def randomise(model: nn.Module, gen: torch.Generator) -> None:
    """Distinct random values in every tensor: weights ~ N(0, 1/fan_in), biases and BN/GN
    affine terms ~ 1 + N(0, 0.1²) / N(0, 0.1²), running means ~ N(0, 0.1²), variances in
    [0.5, 1.5), MeanSparse thresholds in [0.2, 0.5) (non-zero), integer counters random
    (MeanSparse's statistics-update flag stays 0, as in evaluation)."""
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "flag_update_statistics":
                t.zero_()  # evaluation: a set flag makes the reference update its statistics
            elif not t.is_floating_point():
                t.copy_(torch.randint(1, 1000, t.shape, generator=gen))
            elif leaf in ("running_var",):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif leaf == "threshold":
                t.copy_(0.2 + 0.3 * torch.rand(t.shape, generator=gen))
            elif leaf in ("running_mean", "bias", "batch_num"):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            elif t.ndim >= 2:
                t.copy_(torch.randn(t.shape, generator=gen) / t[0].numel() ** 0.5)
            elif leaf in ("mean", "std", "mu", "sigma"):
                continue  # the normaliser keeps its constants
            else:
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=gen))


def _small(cls, **small):
    @functools.wraps(cls)
    def build(*a, **kw):
        return cls(*a, **{**kw, **small})
    return build


@pytest.fixture
def small_zoo(monkeypatch):
    """RobustBench's constructors at reduced size (module doc)."""
    for rid, (d, w, act) in SMALL_DM.items():
        monkeypatch.setitem(TABLE[rid], "model", functools.partial(
            DMWideResNet, num_classes=10, depth=d, width=w, activation_fn=act,
            mean=CIFAR10_MEAN, std=CIFAR10_STD))
    monkeypatch.setattr(sparsified_model, "MeanSparse_DMWideResNet", _small(
        sparsified_model.MeanSparse_DMWideResNet, depth=16, width=1))
    monkeypatch.setattr(sparsified_model, "NormalizedWideResNet", _small(
        sparsified_model.NormalizedWideResNet, **SMALL_RA))
    monkeypatch.setattr(robustarch_wide_resnet, "NormalizedWideResNet", _small(
        robustarch_wide_resnet.NormalizedWideResNet, **SMALL_RA))
    monkeypatch.setitem(TABLE["Huang2022Revisiting_WRN-A4"], "model", functools.partial(
        robust_resnet.PreActResNet, num_classes=10, stride_config=[1, 2, 2], stem_stride=1,
        block_types=["basic_block"] * 3, activations=("SiLU",) * 3,
        normalizations=("BatchNorm",) * 3, use_init=False, cardinality=None, base_width=None,
        scales=None, se_reduction=None, pre_process=True, **SMALL_A4))  # get_model('WRN-A4')
    monkeypatch.setitem(bit_rn_v2.KNOWN_MODELS, "BiT-M-R152x2",
                        lambda *a, **kw: bit_rn_v2.ResNetV2([1, 1, 1, 1], 1, *a, **kw))
    monkeypatch.setitem(bit_rn.KNOWN_MODELS, "BiT-M-R152x2",
                        lambda *a, **kw: bit_rn.ResNetV2([1, 1, 1, 1], 1, *a, **kw))
    monkeypatch.setattr(dm_rn, "WideResNet", _small(dm_rn.WideResNet, depth=10, width=4))
    orig = comp_model.CompositeModel
    monkeypatch.setattr(comp_model, "CompositeModel",
                        lambda fs: orig({**fs, "in_planes": (256, 64)}))
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **kw: self)  # BiT's .cuda()


def save_reference(rid: str, root: Path, gen: torch.Generator) -> nn.Module:
    """Build RobustBench's ``rid``, randomise it, save it in RobustBench's layout; return it."""
    model = TABLE[rid]["model"]()
    randomise(model, gen)
    folder = root / "cifar10" / "Linf"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{rid}.pt"
    if rid.startswith("Bai2024MixedNUTS"):
        torch.save(model.std_model.state_dict(), f"{path}_m0.pt")
        torch.save({"state_dict": model.rob_model.state_dict()}, f"{path}_m1.pt")
    elif rid.startswith("Bai2023Improving"):
        comp = model.comp_model
        torch.save(comp.models[0].state_dict(), f"{path}_m0.pt")
        torch.save(comp.models[1].state_dict(), f"{path}_m1.pt")
        torch.save({"model": comp.policy_net.state_dict(), "bn": comp.bn.state_dict()},
                   f"{path}_m2.pt")
    else:
        state = model.state_dict()
        if rid.startswith("Huang2022"):
            state = {k: v for k, v in state.items() if k not in ("mu", "sigma")}
        torch.save({"state_dict": state}, path)
    return model


def import_with_cli(src: Path, out: Path, *args: str):
    """``advscale model import SRC -o OUT ...`` in process; returns the CliRunner result."""
    from typer.testing import CliRunner

    from advscale.cli.main import app

    return CliRunner().invoke(app, ["model", "import", str(src), "-o", str(out), *args])


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    scale = ref.abs().max().clamp_min(1.0)
    err = float((ours - ref).abs().max() / scale)
    assert err <= 1e-5, f"max |Δlogit| / logit scale = {err:.2e}"


@pytest.mark.parametrize("rid", TOP15)
def test_top15_logits_match_robustbench(rid, tmp_path, small_zoo):
    """advscale's import of each top-15 id gives RobustBench's load_model logits."""
    from advscale.models.checkpoint import load_for_eval

    gen = torch.Generator().manual_seed(sum(map(ord, rid)))
    save_reference(rid, tmp_path, gen)
    ref_model = rb_utils.load_model(rid, model_dir=tmp_path, dataset="cifar10",
                                    threat_model="Linf")
    x = torch.rand(2, 3, 32, 32, generator=gen)
    with torch.no_grad():
        ref = ref_model(x)
    res = import_with_cli(tmp_path / "cifar10" / "Linf" / f"{rid}.pt", tmp_path / "m.safetensors")
    assert res.exit_code == 0, res.output
    model, meta = load_for_eval(tmp_path / "m.safetensors")
    assert meta["robustbench_id"] == rid and meta["missing_keys"] == []
    with torch.no_grad():
        assert_close(model(x), ref)
    if rid == "Bai2024MixedNUTS":  # with a gradient flowing, both use the smooth hard max
        xg = x.clone().requires_grad_(True)
        assert_close(model(xg).detach(), ref_model(xg).detach())


def test_xcit_s12_at_real_size_matches_robustbench_timm(tmp_path):
    """XCiT-S12 (real size) through RobustBench's timm entry and through advscale."""
    import timm

    from advscale.models.checkpoint import load_for_eval

    rid = "Debenedetti2022Light_XCiT-S12"
    name = "debenedetti2022light_xcit_s12_cifar10_linf"
    gen = torch.Generator().manual_seed(12)
    ref_model = timm.create_model(name, pretrained=False)
    randomise(ref_model, gen)
    path = tmp_path / "cifar10" / "Linf" / f"{rid}.pt"
    path.parent.mkdir(parents=True)
    torch.save(ref_model.state_dict(), path)
    ref_model = timm.create_model(name, pretrained=False, checkpoint_path=str(path)).eval()
    x = torch.rand(2, 3, 32, 32, generator=gen)
    res = import_with_cli(path, tmp_path / "x.safetensors")
    assert res.exit_code == 0, res.output
    model, meta = load_for_eval(tmp_path / "x.safetensors")
    assert meta["model_kwargs"] == {"embed_dim": 384, "depth": 12, "num_heads": 8}
    with torch.no_grad():
        assert_close(model(x), ref_model(x))
