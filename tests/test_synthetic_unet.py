"""builtin-unet: train-denoiser for a few steps on a tiny U-Net, exact resume, then sampling."""

from __future__ import annotations

import pytest
import torch
from conftest import make_h5
from safetensors.torch import load_file
from typer.testing import CliRunner

from advscale.errors import AdvscaleError
from advscale.records import loads_all, read_records
from advscale.synthetic.builtin_unet import (
    UNetConfig,
    UNetGenerator,
    build_denoiser,
    denoiser_flops,
    train_denoiser,
)

TINY = UNetConfig(channels=8, channel_mult=(1, 2), blocks=1, dropout=0.1)


def _train(data, run, kimg, **kw):
    return list(train_denoiser(data, run, config=TINY, kimg=kimg, batch_size=16,
                               save_every_kimg=0.032, warmup_kimg=0.016, ema_kimg=0.01,
                               device="cpu", **kw))


def test_unet_shapes_and_flops():
    d = build_denoiser(UNetConfig(channels=8, channel_mult=(1, 2), blocks=1, num_classes=4))
    x = torch.randn(3, 3, 32, 32)
    out = d(x, torch.tensor([0.01, 1.0, 50.0]), torch.tensor([0, 1, 3]))
    assert out.shape == x.shape
    # zero-initialised output layer: D(x) = c_skip x at initialisation
    assert torch.allclose(out[2], x[2] * 0.25 / (2500 + 0.25), atol=1e-6)
    assert denoiser_flops(TINY) > 1e6


def test_train_resume_is_exact_and_generator_samples(tmp_path):
    data = make_h5(tmp_path / "train.h5", 64)
    straight = _train(data, tmp_path / "a", 0.064)
    assert [r["kimg"] for r in straight] == [0.032, 0.064] and straight[-1]["final"]
    assert all(r["loss"] > 0 for r in straight)
    # stop half way, then resume to the same length
    _train(data, tmp_path / "b", 0.032)
    resumed = _train(data, tmp_path / "b", 0.064)
    assert [r["kimg"] for r in resumed] == [0.064]
    a = load_file(str(tmp_path / "a" / "last.safetensors"))
    b = load_file(str(tmp_path / "b" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = list(read_records(tmp_path / "b" / "log.jsonl"))
    assert [r["kind"] for r in log] == ["synthetic.denoiser"] * 2
    with pytest.raises(AdvscaleError, match="resume"):
        _train(data, tmp_path / "b", 0.1, resume=False)

    gen = UNetGenerator.load(tmp_path / "a", device="cpu")
    assert gen.is_trained_diffusion_model and gen.num_classes == 10
    from advscale.synthetic.jobs import generate

    s = generate(gen, tmp_path / "syn.h5", num=4, steps=2, batch_size=4)
    assert s["generator"] == "builtin-unet" and s["nfe"] == 3
    assert s["flops_per_image"] == pytest.approx(3 * gen.flops_per_call)


def test_cli_train_denoiser(tmp_path):
    from advscale.cli.main import app

    data = make_h5(tmp_path / "train.h5", 32)
    r = CliRunner().invoke(app, [
        "gen-synthetic", "train-denoiser", str(data), "-o", str(tmp_path / "run"),
        "--kimg", "0.032", "--batch-size", "16", "--channels", "8", "--channel-mult", "1,2",
        "--blocks", "1", "--save-every-kimg", "0.016", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    recs = loads_all(r.stdout)
    assert [x["kind"] for x in recs] == ["synthetic.denoiser"] * 2 and recs[-1]["final"]
    assert (tmp_path / "run" / "last.safetensors").is_file()
