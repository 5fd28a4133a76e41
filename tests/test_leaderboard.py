"""The leaderboard families end to end, without RobustBench: strict key checks, attacks (standard
AutoAttack and MeanSparse BPDA) on tiny random versions of each family, count-flops, and the
RobustBench card export. RobustBench's own code checks the logits in test_robustbench_oracle.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.models.bit import BiTResNetV2
from advscale.models.meansparse import MeanSparse, bpda
from advscale.models.mixed import CompositeBai2023, MixedNUTS
from advscale.models.rawrn import DMPreActNet, dm_wrn_config
from advscale.models.robust_resnet import RobustPreActResNet
from advscale.models.xcit_cifar import CifarXCiT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_RA = {"stem_width": 16, "depths": (1, 1, 1), "widths": (32, 48, 64), "se_ratio": 0.25}
TINY_BIT = {"units": (1, 1, 1, 1), "wf": 1}
FAMILIES = {  # one leaderboard id per layout, and how to build a tiny random version of it
    "Wang2023Better_WRN-70-16": lambda: DMPreActNet(**dm_wrn_config(10, 1)),
    "Amini2024MeanSparse_S-WRN-94-16": lambda: DMPreActNet(**dm_wrn_config(10, 1),
                                                           meansparse=True),
    "Peng2023Robust": lambda: DMPreActNet(**TINY_RA),
    "Huang2022Revisiting_WRN-A4": lambda: RobustPreActResNet((16, 32, 48, 40), (1, 1, 1)),
    "Bai2024MixedNUTS": lambda: MixedNUTS({**TINY_BIT, "resize": True, "norm_params": True},
                                          TINY_RA),
    "Bai2023Improving_edm": lambda: CompositeBai2023(TINY_BIT, dm_wrn_config(10, 4)),
    "Debenedetti2022Light_XCiT-S12": lambda: CifarXCiT(embed_dim=32, depth=1, num_heads=2),
}


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights, BN statistics and non-zero MeanSparse thresholds."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            leaf = name.rsplit(".", 1)[-1]
            if not t.is_floating_point() or leaf in ("mean", "std"):
                continue
            if leaf == "running_var":
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif leaf == "threshold":
                t.fill_(0.3)
            elif t.ndim >= 2:
                t.copy_(torch.randn(t.shape, generator=gen) / t[0].numel() ** 0.5)
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=gen) + (leaf == "weight"))
    return model.eval()


def save_layout(rid: str, model: nn.Module, folder: Path) -> Path:
    """``model`` saved as RobustBench's ``<id>.pt`` (ensembles: ``<id>.pt_m<i>.pt``)."""
    path = folder / f"{rid}.pt"
    if isinstance(model, MixedNUTS):
        torch.save(model.std_model.state_dict(), f"{path}_m0.pt")
        torch.save(model.rob_model.state_dict(), f"{path}_m1.pt")
    elif isinstance(model, CompositeBai2023):
        torch.save(model.models[0].state_dict(), f"{path}_m0.pt")
        torch.save(model.models[1].state_dict(), f"{path}_m1.pt")
        torch.save({"model": model.policy_net.state_dict(), "bn": model.bn.state_dict()},
                   f"{path}_m2.pt")
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
                   path)
    return path


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


SLOW = ("Bai2024MixedNUTS", "Bai2023Improving_edm", "Debenedetti2022Light_XCiT-S12")
"""Families whose full AutoAttack costs minutes on a CPU even when tiny (BiT at 128², XCiT):
their images get wrong labels, so AutoAttack runs its clean pass only."""


def labelled_h5(path: Path, model: nn.Module, n: int = 2, shift: int = 0) -> Path:
    """``n`` random images labelled with ``model``'s own predictions (so AutoAttack attacks
    them), shifted by ``shift`` classes."""
    from advscale.data import CIFAR10_CLASSES
    from advscale.data.layout import ImageFileWriter

    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        labels = (model(x).argmax(1).numpy() + shift) % 10
    with ImageFileWriter(path, n, source="test", class_names=CIFAR10_CLASSES) as w:
        w.write(images, labels)
    return path


def test_every_family_is_built_at_its_published_size_on_meta():
    """Registered names build at full size (parameter counts of the published models)."""
    from advscale.models import count_parameters, create_model

    want = {"rawrn-70-16": 267_240_802, "ms-wrn-94-16": 365_915_610, "wrn-a4": 147_291_738}
    for name, n in want.items():
        with torch.device("meta"):
            assert count_parameters(create_model(name)) == n


@pytest.mark.parametrize("bad", ["renamed", "missing", "extra"])
def test_key_differences_fail_in_one_line_and_allow_missing_records_them(bad, tmp_path):
    rid = "Peng2023Robust"
    state = randomise(FAMILIES[rid]()).state_dict()
    if bad == "renamed":
        state["logit.weight"] = state.pop("logits.weight")
    elif bad == "missing":
        del state["batchnorm.running_mean"]
    else:
        state["extra.weight"] = torch.zeros(3)
    src = tmp_path / f"{rid}.pt"
    torch.save(state, src)
    out = tmp_path / "m.safetensors"
    res = CliRunner().invoke(app, ["model", "import", str(src), "-o", str(out)])
    assert res.exit_code != 0 and not out.exists()
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("advscale: error:"), res.output
    named = {"renamed": ("logits.weight", "logit.weight"), "missing": ("batchnorm.running_mean",),
             "extra": ("extra.weight",)}[bad]
    assert all(k in lines[0] for k in named) and "layout rawrn" in lines[0]
    res = cli("model", "import", str(src), "-o", str(out), "--allow-missing")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout.strip().splitlines()[-1])["source"]
    listed = info["missing_keys"] + info["dropped_keys"]
    assert sorted(listed) == sorted(named) and info["robustbench_id"] == rid


def test_bpda_passes_gradients_straight_through():
    ms = MeanSparse(4)
    ms.running_mean.zero_()
    ms.running_var.fill_(1.0)
    ms.threshold.fill_(0.5)
    x = torch.tensor([[[[0.1]], [[0.9]], [[-0.2]], [[-2.0]]]], requires_grad=True)
    ms(x).sum().backward()
    assert x.grad.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]  # masked entries: no gradient
    x.grad = None
    with bpda(ms) as n:
        y = ms(x)
        y.sum().backward()
    assert n == 1 and x.grad.flatten().tolist() == [1.0] * 4 and not ms.straight_through
    assert y.flatten().tolist() == pytest.approx([0.0, 0.9, 0.0, -2.0])


@pytest.mark.parametrize("rid", list(FAMILIES))
def test_attack_runs_aa_standard_on_each_family(rid, tmp_path):
    """Import a tiny random version in the published layout; AutoAttack (standard) runs on it,
    and for MeanSparse BPDA too; records say which evaluation ran; the card exports."""
    from advscale.models.checkpoint import load_for_eval

    src = save_layout(rid, randomise(FAMILIES[rid](), seed=len(rid)), tmp_path)
    ckpt = tmp_path / "m.safetensors"
    res = cli("model", "import", str(src), "-o", str(ckpt))
    assert res.exit_code == 0, res.output
    data = labelled_h5(tmp_path / "t.h5", load_for_eval(ckpt)[0], shift=int(rid in SLOW))
    runs = [("exact",), ("bpda",)] if "MeanSparse" in rid else [("exact",)]
    recs = []
    for (gradient,) in runs:
        res = cli("attack", str(ckpt), "--data", str(data), "--attack", "aa-standard", "--n",
                  "2", "--batch-size", "2", "--device", "cpu", "--gradient", gradient)
        assert res.exit_code == 0, res.output
        rec = json.loads(res.stdout.strip().splitlines()[-1])
        assert rec["kind"] == "attack" and rec["clean_acc"] == (rid not in SLOW)
        assert rec.get("gradient", "exact") == gradient
        if "MeanSparse" in rid:
            assert rec["gradient"] == gradient  # stated even for the exact run
        recs.append(rec)
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = cli("records", "export", str(results), "--format", "robustbench")
    assert res.exit_code == 0, res.output
    card = json.loads(res.stdout)
    assert card["clean_acc"] == f"{100 * recs[0]['clean_acc']:.2f}"
    assert card["eps"] == "8/255" and card["n_images"] == 2
    assert card["autoattack_acc"] == f"{100 * recs[0]['robust_acc']:.2f}"
    assert [s["gradient"] for s in card["attack_settings"]] == [g for (g,) in runs]


def test_bpda_on_a_model_without_meansparse_is_one_error(tmp_path, tiny_ckpt, tiny_h5):
    res = cli("attack", str(tiny_ckpt), "--data", str(tiny_h5), "--attack", "pgd-cw", "--n",
              "2", "--steps", "1", "--device", "cpu", "--gradient", "bpda")
    assert res.exit_code != 0 and "no" in res.output and "MeanSparse" in res.output


def test_count_flops_gives_number_forward_passes():
    from advscale.models.robustbench import LEADERBOARD

    res = cli("count-flops", "--robustbench-id", "Debenedetti2022Light_XCiT-S12", "--loss",
              "standard")
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    assert rec["number_forward_passes"] == 1 and rec["model"] == "xcit-s12-cifar"
    assert rec["params"] == 25_872_154 and 3e9 < rec["forward_flops_per_image"] < 3.3e9
    assert LEADERBOARD["Bai2024MixedNUTS"].forward_passes == 2


def test_unknown_id_and_unnamed_file_are_one_error(tmp_path):
    torch.save(randomise(FAMILIES["Peng2023Robust"]()).state_dict(), tmp_path / "x.pt")
    res = cli("model", "import", str(tmp_path / "x.pt"), "-o", str(tmp_path / "o.safetensors"),
              "--robustbench-id", "Peng2023Robus")
    assert res.exit_code != 0 and "did you mean Peng2023Robust" in res.output
    res = cli("model", "import", str(tmp_path / "x.pt"), "-o", str(tmp_path / "o.safetensors"),
              "--robustbench-id", "Peng2023Robust")
    assert res.exit_code == 0, res.output


def test_bit_is_a_plain_module():
    assert isinstance(BiTResNetV2(units=(1, 1, 1, 1), wf=1), nn.Module)
