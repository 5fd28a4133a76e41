"""``precision``: bf16 autocast evaluation agrees per image with fp32 on a tiny model; fp32
records and settings keys are those of advscale before precisions existed."""

from __future__ import annotations

import numpy as np
import pytest
from test_attack_torchrun import self_labelled
from typer.testing import CliRunner

from advscale.records import loads_all

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(ckpt, data, adv, *extra: str) -> dict:
    from advscale.cli.main import app

    r = CliRunner().invoke(app, ["attack", str(ckpt), "--data", str(data), "--attack", "apgd-ce",
                                 "--steps", "2", "--eps", "1/255", "--n", "32", "--chunk-size",
                                 "16", "--batch-size", "16", "--device", "cpu", "--save-adv",
                                 str(adv), *extra])
    assert r.exit_code == 0, r.stderr
    [rec] = loads_all(r.stdout)
    return rec


def test_bf16_agrees_per_image_with_fp32(tmp_path):
    from advscale.attacks.advfile import read_adv_file
    from advscale.records import validate

    ckpt, data = self_labelled(tmp_path, 32, seed=1)
    fp32 = _run(ckpt, data, tmp_path / "fp32.h5")
    bf16 = _run(ckpt, data, tmp_path / "bf16.h5", "--precision", "bf16")
    validate(fp32)
    validate(bf16)
    assert "precision" not in fp32 and bf16["precision"] == "bf16"
    assert bf16["settings_key"] != fp32["settings_key"]
    assert bf16["provenance"]["config"]["precision"] == "bf16"
    a, b = read_adv_file(tmp_path / "fp32.h5"), read_adv_file(tmp_path / "bf16.h5")
    robust_a = a["pred_adv"] == a["label"]
    robust_b = b["pred_adv"] == b["label"]
    agree = float(np.mean(robust_a == robust_b))
    print(f"bf16 vs fp32: {agree:.1%} of {len(robust_a)} images agree on robust/non-robust "
          f"(robust fp32 {robust_a.sum()}, bf16 {robust_b.sum()})")
    assert 0 < robust_a.sum() < len(robust_a)  # a non-trivial comparison
    assert agree >= 0.9
    assert float(np.mean(a["pred_clean"] == b["pred_clean"])) >= 0.9


def test_bf16_forward_is_bf16_with_float32_logits():
    import torch

    from advscale.attacks.precision import with_precision
    from advscale.models import create_model

    torch.manual_seed(0)
    m = create_model("wrn-10-1").eval()
    x = torch.rand(4, 3, 32, 32)
    a, b = m(x), with_precision(m, "bf16", torch.device("cpu"))(x)
    assert b.dtype == torch.float32
    assert 0 < float((a - b).abs().max()) < 0.1 * float(a.abs().max())  # rounded, not wrong


def test_fp32_key_unchanged_and_bad_precision_names_field():
    from advscale.attacks.settings import AttackSettings, settings_key
    from advscale.errors import AdvscaleError

    s = AttackSettings(attack="apgd-ce", n=10).resolved()
    key = settings_key("c" * 64, "d" * 64, s, "autoattack", "0")
    import hashlib
    import json

    doc = {"checkpoint_sha256": "c" * 64, "data_sha256": "d" * 64, "attack": "apgd-ce",
           "eps": round(8 / 255, 12), "steps": 100, "step_size": None, "n": 10,
           "batch_size": 250, "chunk_size": 1000, "seed": 0, "package": "autoattack",
           "package_version": "0"}
    assert key == hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    assert settings_key("c" * 64, "d" * 64, AttackSettings(
        attack="apgd-ce", n=10, precision="tf32").resolved(), "autoattack", "0") != key
    with pytest.raises(AdvscaleError) as e:
        AttackSettings(attack="apgd-ce", precision="fp16").resolved()
    assert e.value.field == "precision"


def test_tf32_on_cpu_says_it_ran_fp32(tmp_path):
    ckpt, data = self_labelled(tmp_path, 32, seed=1)
    rec = _run(ckpt, data, tmp_path / "tf32.h5", "--precision", "tf32", "--n", "16")
    assert rec["precision"] == "tf32" and "no effect on CPU" in rec["precision_note"]
