"""diffusers generator: VP ↔ EDM conversion on a tiny random class-conditional UNet2DModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advscale.errors import AdvscaleError

diffusers = pytest.importorskip("diffusers")

from advscale.synthetic.diffusers_gen import DiffusersGenerator, vp_sigmas  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, num_class_embeds=10)
    unet.save_pretrained(d / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_pretrained(d / "scheduler")
    return d


@pytest.mark.parametrize("ptype", ["epsilon", "sample", "v_prediction"])
def test_conversion_formulas(model_dir, ptype):
    gen = DiffusersGenerator.load(model_dir, prediction_type=ptype)
    assert gen.num_classes == 10 and gen.image_shape == (3, 32, 32)
    assert gen.sigma_min == pytest.approx(0.01, rel=0.01)  # sqrt(b0/(1-b0)) with b0 = 1e-4
    assert 80 >= gen.sigma_max > 50 and gen.flops_per_call > 0
    sched = diffusers.DDPMScheduler.from_pretrained(str(model_dir / "scheduler"))
    table = vp_sigmas(sched.alphas_cumprod.numpy())
    t = 400
    sigma = torch.tensor([table[t]], dtype=torch.float64)
    assert float(gen._timestep(sigma)[0]) == pytest.approx(t, abs=1e-6)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    lab = torch.tensor([3])
    a = float(sched.alphas_cumprod[t])
    x_t = x * a**0.5
    with torch.no_grad():
        raw = gen.unet(x_t.float(), torch.tensor([float(t)]), class_labels=lab).sample.double()
    want = {"epsilon": x - sigma * raw, "sample": raw,
            "v_prediction": a**0.5 * x_t - (1 - a) ** 0.5 * raw}[ptype]
    assert torch.allclose(gen.denoise(x, sigma, lab), want, atol=1e-5)


def test_generates_and_rejects_bad_input(model_dir, tmp_path):
    from advscale.synthetic.jobs import generate

    gen = DiffusersGenerator.load(model_dir, prediction_type="epsilon")
    s = generate(gen, tmp_path / "d.h5", num=3, steps=2, batch_size=3)
    assert s["generator"] == "diffusers" and s["sampler_sigma_min"] == pytest.approx(
        gen.sigma_min) and np.isfinite(s["flops_per_image"])
    with pytest.raises(AdvscaleError, match="prediction-type"):
        DiffusersGenerator.load(model_dir, prediction_type="x0")
    with pytest.raises(AdvscaleError, match="not a diffusers"):
        DiffusersGenerator.load(tmp_path / "none", prediction_type="epsilon")
