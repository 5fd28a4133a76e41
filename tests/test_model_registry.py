"""Every registered model, built small: registering a model family is testing it.

Each name of ``list_models()`` maps to a tiny member of its family (:func:`toy_of`; a family
registered without one fails :func:`test_every_registered_model_has_a_toy`). Each toy, and a
timm ViT at 32 px, is built, run forward on 32×32 images, attacked (1-step PGD), counted (FLOPs
on the meta device), trained one TRADES step, and round-tripped through a checkpoint that
restores its ``model_kwargs``. The field's baselines are pinned to RobustBench's parameter
counts and to a forward-FLOP count written out in this file.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import make_h5
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.errors import AdvscaleError
from advscale.models import count_parameters, create_model, list_models, toy_of
from advscale.records import loads_all, validate

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
VIT = ("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4, "depth": 1, "embed_dim": 48,
                                "num_heads": 2})
"""A timm ViT at 32 px (patch 4), depth and width cut down through model_kwargs."""
TOYS = sorted({(n, json.dumps(k, sort_keys=True))
               for n, k in (toy_of(m) for m in list_models())})


def test_every_registered_model_has_a_toy():
    for name in list_models():
        toy, kwargs = toy_of(name)
        assert isinstance(toy, str) and isinstance(kwargs, dict), name
    assert {"resnet18", "resnet34", "resnet50", "preactresnet18", "wrn-10-1"} <= {
        t for t, _ in TOYS}


def _one_trades_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    from advscale.training.losses import LOSSES, AttackConfig

    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    out = LOSSES["trades"](model, x, y, AttackConfig(steps=1))
    out.loss.backward()
    opt.step()
    return float(out.loss.detach())


@pytest.mark.parametrize(("name", "kwargs"),
                         [*((n, json.loads(k)) for n, k in TOYS), VIT],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_model_builds_attacks_counts_trains_and_checkpoints(name, kwargs, tmp_path):
    from advscale.attacks.pgd import pgd_l2, pgd_linf
    from advscale.models.checkpoint import load_for_eval, save_model_checkpoint
    from advscale.training.flops import count_training_flops

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, image_size=32, **kwargs)
    x, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (4, 10)
    adv = pgd_linf(model, x, y, eps=8 / 255, step_size=2 / 255, steps=1)
    assert adv.shape == x.shape and float((adv - x).abs().max()) <= 8 / 255 + 1e-6
    adv = pgd_l2(model, x, y, eps=0.5, step_size=0.125, steps=1)  # the L2 threat model too
    assert float((adv - x).flatten(1).norm(dim=1).max()) <= 0.5 + 1e-5
    count = count_training_flops(name, "trades", 2, model_kwargs=kwargs)
    assert count.params == count_parameters(model) and count.forward_flops_per_image > 0
    assert count.train_flops_per_sample > 2 * count.forward_flops_per_image
    assert torch.isfinite(torch.tensor(_one_trades_step(model, x, y)))

    model.eval()
    path = save_model_checkpoint(tmp_path / "m.safetensors", model,
                                 {"model": name, "num_classes": 10, "model_kwargs": kwargs})
    loaded, meta = load_for_eval(path)
    assert meta["model_kwargs"] == json.loads(json.dumps(kwargs))
    assert meta["mean"] == pytest.approx(model.mean.flatten().tolist())
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)


# -- the field's baselines -------------------------------------------------------------------------
def test_parameter_counts_equal_robustbench():
    """RobustBench's ResNet18() and PreActResNet18() for 10 classes."""
    with torch.device("meta"):
        assert count_parameters(create_model("resnet18")) == 11_173_962
        assert count_parameters(create_model("preactresnet18")) == 11_171_146
        # the Rice et al. / Wong et al. variant adds the final BN (512 weights + 512 biases)
        assert count_parameters(create_model("preactresnet18", bn_before_fc=True)) == 11_172_170


def _reference_macs(layers: tuple[int, ...], bottleneck: bool, width: int = 64,
                    classes: int = 10, size: int = 32) -> int:
    """Multiply-accumulates of a CIFAR ResNet's convolutions and classifier, written out:
    3×3 stem at full size, stages of width·2^i planes (stride 2 from the second), 1×1
    projection shortcuts where the shape changes, a linear layer on the pooled features."""
    macs, cin, s = size * size * width * 3 * 9, width, size
    expansion = 4 if bottleneck else 1
    for i, n in enumerate(layers):
        planes = width * 2 ** i
        for j in range(n):
            s_in, s = s, s // 2 if (i and not j) else s
            cout = planes * expansion
            if bottleneck:
                macs += s_in * s_in * planes * cin          # 1×1 reduce, before the stride
                macs += s * s * planes * planes * 9         # 3×3 (strided)
                macs += s * s * cout * planes               # 1×1 expand
            else:
                macs += s * s * planes * cin * 9 + s * s * planes * planes * 9
            if cin != cout or s != s_in:
                macs += s * s * cout * cin                  # projection shortcut
            cin = cout
    return macs + cin * classes


@pytest.mark.parametrize(("name", "layers", "bottleneck"), [
    ("resnet18", (2, 2, 2, 2), False), ("preactresnet18", (2, 2, 2, 2), False),
    ("resnet34", (3, 4, 6, 3), False), ("resnet50", (3, 4, 6, 3), True)])
def test_forward_flops_equal_the_written_out_count(name, layers, bottleneck):
    from advscale.models.summary import describe
    from advscale.training.flops import count_training_flops

    ref = 2 * _reference_macs(layers, bottleneck)
    assert describe(name)["forward_flops_per_image"] == ref
    assert count_training_flops(name, "standard", 0).forward_flops_per_image == ref
    small = 2 * _reference_macs(layers, bottleneck, width=4)
    assert describe(name, {"width": 4})["forward_flops_per_image"] == small


def test_cifar_stems_keep_the_resolution():
    """3×3 stride-1 stem, no max-pool: the last stage sees 4×4 on a 32×32 image."""
    seen: dict[str, tuple[int, ...]] = {}
    for name in ("resnet18", "preactresnet18"):
        m = create_model(name, width=4).eval()
        m.layer4.register_forward_hook(lambda mod, i, o, n=name: seen.__setitem__(n, o.shape))
        m(torch.rand(1, 3, 32, 32))
    assert all(shape[-2:] == (4, 4) for shape in seen.values())


# -- options: owned by the family, unset dropped, unknown refused --------------------------------
def test_options_are_the_familys():
    assert create_model("resnet18", width=4, activation=None).activation == "relu"  # unset
    assert create_model("preactresnet18", width=4, activation="silu").activation == "silu"
    with pytest.raises(AdvscaleError, match="takes no option 'padding'"):
        create_model("resnet18", padding="dm")
    with pytest.raises(AdvscaleError, match="takes no option 'activation'"):
        create_model("vit_tiny_patch16_224", activation="relu", img_size=32, patch_size=4)
    with pytest.raises(AdvscaleError, match="model_kwargs img_size=32,patch_size=4"):
        create_model("vit_tiny_patch16_224", image_size=32)
    none = create_model("resnet18", width=4, mean=(0, 0, 0), std=(1, 1, 1))
    assert none.mean.abs().sum() == 0 and torch.all(none.std == 1)


def test_cli_count_flops_vit_at_32px_and_refusals():
    args = ["count-flops", "--model", "vit_tiny_patch16_224"]
    r = runner.invoke(app, [*args, "--model-kwargs", "img_size=32,patch_size=4"])
    assert r.exit_code == 0, r.stderr
    (rec,) = loads_all(r.stdout)
    validate(rec)
    assert rec["model_kwargs"] == {"img_size": 32, "patch_size": 4}
    assert rec["params"] == 5_362_762 and rec["forward_flops_per_image"] > 0
    for extra, message in (([], "--model-kwargs img_size=32,patch_size=4"),
                           (["--model-kwargs", "img_size=32,patch_size=4", "--activation",
                             "relu"], "takes no option '--activation'"),
                           (["--model-kwargs", "img_size"], "KEY=VALUE")):
        r = runner.invoke(app, [*args, *extra])
        assert r.exit_code != 0 and r.stdout == ""
        assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_parse_kwargs_json_values():
    from advscale.cli.common import parse_kwargs

    assert parse_kwargs("img_size=32,mean=[0.5,0.5,0.5],name=x,flag=true,none=null") == {
        "img_size": 32, "mean": [0.5, 0.5, 0.5], "name": "x", "flag": True, "none": None}
    assert parse_kwargs(None) == {} and parse_kwargs("") == {}


# -- architecture answers --------------------------------------------------------------------------
def test_model_list_params_and_info_for_a_name():
    r = runner.invoke(app, ["model", "list", "wrn-*", "--params"])
    assert r.exit_code == 0, r.stderr
    recs = {x["model"]: x for x in loads_all(r.stdout)}
    for x in recs.values():
        validate(x)
        assert x["kind"] == "model.arch"
    assert recs["wrn-28-10"]["family"] == "wrn-D-W"  # other wrn-* names are their own families
    assert recs["wrn-28-10"]["params"] == 36_479_194 and "wrn-D-W" not in recs
    assert "wrn-70-16" in recs and recs["wrn-70-16"]["forward_flops_per_image"] > 7e10
    r = runner.invoke(app, ["model", "info", "resnet18"])
    assert r.exit_code == 0, r.stderr
    (info,) = loads_all(r.stdout)
    validate(info)
    assert info["params"] == 11_173_962
    assert info["forward_flops_per_image"] == 2 * _reference_macs((2, 2, 2, 2), False)
    r = runner.invoke(app, ["model", "info", "no-such-net-xyz"])
    assert r.exit_code != 0 and r.stderr.count("\n") == 1


# -- checkpoints validated before allocation ------------------------------------------------------
@pytest.mark.parametrize("claim", [{"model": "wrn-4000-1000"}, {"num_classes": 1e9},
                                   {"model": "resnet18"}, {"num_classes": "many"}])
def test_checkpoint_claims_checked_against_stored_shapes(claim, tmp_path):
    from advscale.core.stfile import save_tensors
    from advscale.models.checkpoint import MODEL_PREFIX, load_for_eval

    m = create_model("wrn-10-1")
    tensors = {MODEL_PREFIX + k: v for k, v in m.state_dict().items()}
    meta = {"advscale_checkpoint": "3", "model": "wrn-10-1", "num_classes": 10, **claim}
    path = save_tensors(tmp_path / "lie.safetensors", tensors, meta)
    with pytest.raises(AdvscaleError) as e:
        load_for_eval(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    data = make_h5(tmp_path / "d.h5", 16)
    for args in (["model", "info", str(path)],
                 ["attack", str(path), "--data", str(data), "--n", "4"],
                 ["train", "--out", str(tmp_path / "run"), "--data", str(data), "--eval-data",
                  str(data), "--samples", "16", "--init", str(path)]):
        r = runner.invoke(app, args)
        assert r.exit_code != 0 and r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
        assert str(path) in r.stderr
    assert not (tmp_path / "run").exists()


# -- a model family from one file -----------------------------------------------------------------
def _import_fixture_family() -> Any:
    path = Path(__file__).parent / "fixtures" / "tiny_mlp_family.py"
    spec = importlib.util.spec_from_file_location("tiny_mlp_family", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_family_from_one_file_lists_and_trains_through_the_cli(tmp_path):
    from advscale.models.checkpoint import load_for_eval

    _import_fixture_family()
    r = runner.invoke(app, ["model", "list"])
    assert r.exit_code == 0 and "tinymlp" in r.stdout.split()
    train, test = make_h5(tmp_path / "train.h5", 64, seed=1), make_h5(tmp_path / "test.h5", 16)
    out = tmp_path / "run"
    r = runner.invoke(app, [
        "train", "--out", str(out), "--data", str(train), "--eval-data", str(test),
        "--samples", "64", "--model", "tinymlp", "--model-kwargs", "hidden=6",
        "--pgd-steps", "1", "--eval-n", "16", "--eval-steps", "1", "--batch-size", "32",
        "--lr", "0.1", "--no-progress"])
    assert r.exit_code == 0, r.stderr
    recs = loads_all(r.stdout)
    assert recs and recs[-1]["final"] and recs[-1]["model"] == "tinymlp"
    assert recs[-1]["params"] == 3 * 32 * 32 * 6 + 6 + 6 * 10 + 10
    model, meta = load_for_eval(out)
    # the training file's mean/std join the options of a family that takes them
    assert meta["model_kwargs"]["hidden"] == 6 and model.net[1].out_features == 6
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "r2"), "--data", str(train),
                            "--eval-data", str(test), "--samples", "64", "--model", "tinymlp",
                            "--activation", "relu"])
    assert r.exit_code != 0 and "takes no option '--activation'" in r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "r2" / "records.jsonl").exists()


def test_init_checkpoint_brings_its_model_kwargs(tmp_path):
    from advscale.models.checkpoint import save_model_checkpoint
    from advscale.training.config import TrainConfig, apply_init

    model = create_model("preactresnet18", width=4, activation="silu")
    path = save_model_checkpoint(tmp_path / "p.safetensors", model,
                                 {"model": "preactresnet18", "num_classes": 10,
                                  "model_kwargs": {"width": 4, "activation": "silu"}})
    out = apply_init({"init": str(path)})
    assert (out["model"], out["activation"], out["model_kwargs"]["width"]) == (
        "preactresnet18", "silu", 4)
    cfg = TrainConfig.from_dict({**out, "data": "a.h5", "eval_data": "b.h5", "samples": 8})
    rebuilt = create_model(cfg.model, **cfg.model_options())
    rebuilt.load_state_dict(model.state_dict())  # same architecture, same keys and shapes
    with pytest.raises(AdvscaleError, match="contradicts the init"):
        apply_init({"init": str(path), "model_kwargs": {"width": 8}})
