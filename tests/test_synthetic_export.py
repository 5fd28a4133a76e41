"""edm-export: a small network with NVlabs' EDMPrecond interface, exported and reloaded."""

from __future__ import annotations

import json
import pickle
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from advscale.errors import AdvscaleError
from advscale.records import loads_all
from advscale.synthetic.edm import SamplerConfig, edm_sample
from advscale.synthetic.edm_export import (
    ExportedEDMGenerator,
    _EDMInterface,
    check_archive,
    export_module,
)

FAKE_EDM = textwrap.dedent(
    '''
    import torch


    class TinyPrecond(torch.nn.Module):
        """Same call signature and attributes as NVlabs' EDMPrecond (random weights)."""

        def __init__(self, label_dim=10):
            super().__init__()
            self.img_resolution, self.img_channels, self.label_dim = 32, 3, label_dim
            self.sigma_min, self.sigma_max, self.sigma_data = 0, float("inf"), 0.5
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.emb = torch.nn.Linear(label_dim, 8)
            self.out = torch.nn.Conv2d(8, 3, 3, padding=1)

        def forward(self, x, sigma, class_labels=None, force_fp32=False):
            sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
            c_skip = self.sigma_data ** 2 / (sigma ** 2 + self.sigma_data ** 2)
            c_out = sigma * self.sigma_data / (sigma ** 2 + self.sigma_data ** 2).sqrt()
            c_in = 1 / (self.sigma_data ** 2 + sigma ** 2).sqrt()
            h = torch.nn.functional.silu(self.conv(c_in * x))
            h = h + self.emb(class_labels.to(torch.float32)).reshape(-1, 8, 1, 1)
            h = h * (sigma.log() / 4).cos()
            return (c_skip * x + c_out * self.out(h)).to(torch.float32)
    '''
)


@pytest.fixture
def fake_edm(tmp_path):
    """A fake 'EDM code' folder and a pickle that needs it, like edm-cifar10-32x32-cond-vp.pkl."""
    code = tmp_path / "edm_code"
    (code / "training").mkdir(parents=True)
    (code / "training" / "__init__.py").write_text("")
    (code / "training" / "networks.py").write_text(FAKE_EDM)
    sys.path.insert(0, str(code))
    try:
        from training.networks import TinyPrecond  # type: ignore[import-not-found]

        torch.manual_seed(0)
        net = TinyPrecond()
        pkl = tmp_path / "edm-tiny.pkl"
        with open(pkl, "wb") as f:
            pickle.dump({"ema": net}, f)
    finally:
        sys.path.remove(str(code))
        for m in [m for m in sys.modules if m == "training" or m.startswith("training.")]:
            del sys.modules[m]
    return code, pkl, net


def test_export_and_reload_gives_identical_outputs(fake_edm, tmp_path):
    _, _, net = fake_edm
    out = tmp_path / "tiny.pt2"
    info = export_module(_EDMInterface(net, True), out, num_classes=10)
    assert info["flops_per_call"] > 0 and out.is_file()
    gen = ExportedEDMGenerator.load(out)
    assert gen.num_classes == 10 and gen.image_shape == (3, 32, 32)
    x = torch.randn(5, 3, 32, 32, dtype=torch.float64)
    sigma = torch.tensor([0.002, 0.1, 1.0, 10.0, 80.0], dtype=torch.float64)
    labels = torch.tensor([0, 3, 9, 1, 1])
    got = gen.denoise(x, sigma, labels)
    onehot = torch.nn.functional.one_hot(labels, 10).float()
    with torch.no_grad():
        want = net(x.float(), sigma.float(), onehot).double()
    assert torch.equal(got, want)
    # the batch dimension is dynamic: the sampler runs through it at another batch size
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    res = edm_sample(gen.denoise, gen.prior(gens), torch.tensor([1, 2, 3]),
                     SamplerConfig(steps=3))
    assert res.nfe == 5 and torch.isfinite(res.images).all()


def test_export_command_from_pickle_then_generate(fake_edm, tmp_path):
    from advscale.cli.main import app

    code, pkl, net = fake_edm
    runner = CliRunner()
    out = tmp_path / "edm.pt2"
    r = runner.invoke(app, ["gen-synthetic", "export", "--pkl", str(pkl), "--edm-code",
                            str(code), "-o", str(out)])
    assert r.exit_code == 0, r.output
    rec = loads_all(r.stdout)[0]
    assert rec["kind"] == "synthetic.export" and rec["num_classes"] == 10
    assert rec["source_name"] == "edm-tiny.pkl" and "CC BY-NC-SA" in rec["licence"]
    assert "training" not in sys.modules  # the EDM code is not left importable
    r = runner.invoke(app, ["gen-synthetic", "-g", "edm-export", "--model", str(out),
                            "--steps", "2", "-n", "6", "--batch-size", "4", "--device", "cpu",
                            "-o", str(tmp_path / "syn.h5")])
    assert r.exit_code == 0, r.output
    rec = loads_all(r.stdout)[0]
    assert rec["generator"] == "edm-export" and rec["nfe"] == 3
    assert rec["is_trained_diffusion_model"] is True and rec["licence"].startswith("Weights")
    # without the code the pickle cannot be read: a clear error
    r = runner.invoke(app, ["gen-synthetic", "export", "--pkl", str(pkl), "--edm-code",
                            str(tmp_path), "-o", str(tmp_path / "x.pt2")])
    assert r.exit_code != 0 and "--edm-code" in r.output


def test_archives_that_would_unpickle_are_refused(fake_edm, tmp_path):
    _, _, net = fake_edm
    good = tmp_path / "good.pt2"
    export_module(_EDMInterface(net, True), good, num_classes=10)
    check_archive(good)
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("model_weights_config.json"):
                cfg = json.loads(data)
                first = next(iter(cfg["config"]))
                cfg["config"][first]["use_pickle"] = True
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)
    with pytest.raises(AdvscaleError, match="unpickled"):
        ExportedEDMGenerator.load(bad)
    (tmp_path / "junk.pt2").write_bytes(np.arange(10).tobytes())
    with pytest.raises(AdvscaleError, match="not a torch.export archive"):
        ExportedEDMGenerator.load(tmp_path / "junk.pt2")
