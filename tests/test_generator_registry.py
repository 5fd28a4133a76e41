"""Every registered generator, built small and sampled: registering a generator is testing it.

:data:`TOY` holds, per generator name, how to build a tiny instance's options; a generator
registered without a toy entry fails :func:`test_every_generator_has_a_toy`, so a new one is
noticed. Each toy generator then samples a few images through the one generation job.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import make_h5

from advscale.synthetic.generators import list_generators, load_generator
from advscale.synthetic.jobs import generate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _TinyEDM(torch.nn.Module):
    """NVlabs' EDMPrecond call signature with two random convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.img_resolution, self.img_channels, self.label_dim = 32, 3, 10
        self.sigma_data = 0.5
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.emb = torch.nn.Linear(10, 3)

    def forward(self, x, sigma, class_labels=None, force_fp32=False):
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
        c_skip = self.sigma_data ** 2 / (sigma ** 2 + self.sigma_data ** 2)
        h = self.conv(x) + self.emb(class_labels.to(torch.float32)).reshape(-1, 3, 1, 1)
        return (c_skip * x + (1 - c_skip) * h).to(torch.float32)


def _gaussian(tmp: Path, train: Path) -> dict[str, Any]:
    return {"data": train, "components": 2, "fit_per_class": 8}


def _unet(tmp: Path, train: Path) -> dict[str, Any]:
    from advscale.synthetic.builtin_unet import UNetConfig, train_denoiser

    list(train_denoiser(train, tmp / "unet", config=UNetConfig(channels=8, channel_mult=(1, 2),
                                                                blocks=1), kimg=0.016,
                        batch_size=16, save_every_kimg=0.016, warmup_kimg=0.016,
                        ema_kimg=0.01, device="cpu"))
    return {"model": tmp / "unet"}


def _edm_export(tmp: Path, train: Path) -> dict[str, Any]:
    from advscale.synthetic.edm_export import _EDMInterface, export_module

    torch.manual_seed(0)
    export_module(_EDMInterface(_TinyEDM(), True), tmp / "tiny.pt2", num_classes=10)
    return {"model": tmp / "tiny.pt2"}


def _diffusers(tmp: Path, train: Path) -> dict[str, Any]:
    diffusers = pytest.importorskip("diffusers")
    unet = diffusers.UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, num_class_embeds=10)
    unet.save_pretrained(tmp / "d" / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_pretrained(tmp / "d" / "scheduler")
    return {"model": tmp / "d", "prediction_type": "epsilon"}


TOY: dict[str, Callable[[Path, Path], dict[str, Any]]] = {
    "builtin-gaussian": _gaussian, "builtin-unet": _unet, "edm-export": _edm_export,
    "diffusers": _diffusers,
}
"""Generator name → (tmp folder, a tiny train.h5) → :func:`load_generator` options."""


def test_every_generator_has_a_toy():
    assert set(list_generators()) <= set(TOY), "add a toy builder for the new generator"


@pytest.mark.parametrize("name", list_generators())
def test_generator_samples(name, tmp_path):
    train = make_h5(tmp_path / "train.h5", 64)
    gen = load_generator(name, device="cpu", **TOY[name](tmp_path, train))
    assert gen.num_classes == 10
    summary = generate(gen, tmp_path / "syn.h5", num=4, steps=2, batch_size=4)
    assert summary["nfe"] == 3 and summary["n"] == 4 and summary["generator"] == name
    from advscale.data.reader import ImageMixture

    mix = ImageMixture([tmp_path / "syn.h5"])
    assert len(mix) == 4 and tuple(mix.image_shape) == (32, 32, 3)
