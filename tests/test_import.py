"""Importing published checkpoints (issue 15): every layout, logits to 1e-5, one-line errors.

The reference networks below are written here from the sources' documented structure
(DeepMind-style WRN of DM-Improves-AT / RobustBench ``dm_wide_resnet.py``; TRADES-style WRN of
RobustBench / timm-adv-training ``wide_resnet.py``), and each checkpoint is written in the
layout its training script saves (``torch.save`` of the dictionaries those scripts build).
"""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from test_fidelity import _randomise_bn
from torch import nn
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.errors import AdvscaleError
from advscale.models.checkpoint import (
    import_checkpoint,
    load_for_eval,
    read_checkpoint_metadata,
)
from advscale.models.importer import DM_DATA_STD, import_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5
C10_MEAN, C10_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


# -- independent reference networks ---------------------------------------------------------------
class DMBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.batchnorm_0, self.relu_0 = nn.BatchNorm2d(cin), act()
        self.conv_0 = nn.Conv2d(cin, cout, 3, stride, 0, bias=False)
        self.batchnorm_1, self.relu_1 = nn.BatchNorm2d(cout), act()
        self.conv_1 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=False) if cin != cout else None
        self.stride = stride

    def forward(self, x):
        a = self.relu_0(self.batchnorm_0(x))
        pad = (1, 1, 1, 1) if self.stride == 1 else (0, 1, 0, 1)
        out = self.conv_1(self.relu_1(self.batchnorm_1(self.conv_0(F.pad(a, pad)))))
        return out + (self.shortcut(a) if self.shortcut is not None else x)


class DMGroup(nn.Module):
    def __init__(self, n, cin, cout, stride, act) -> None:
        super().__init__()
        self.block = nn.Sequential(*[DMBlock(cin if i == 0 else cout, cout,
                                             stride if i == 0 else 1, act) for i in range(n)])

    def forward(self, x):
        return self.block(x)


class DMWRN(nn.Module):
    """DeepMind-style: init_conv, layer.g.block.i.*, batchnorm, logits; normalises inside."""

    def __init__(self, depth, width, num_classes=10, act=nn.SiLU, mean=C10_MEAN, std=C10_STD,
                 normalise=True) -> None:
        super().__init__()
        n, ch = (depth - 4) // 6, [16, 16 * width, 32 * width, 64 * width]
        self.m = torch.tensor(mean).view(3, 1, 1) if normalise else torch.zeros(3, 1, 1)
        self.s = torch.tensor(std).view(3, 1, 1) if normalise else torch.ones(3, 1, 1)
        self.init_conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.layer = nn.Sequential(DMGroup(n, ch[0], ch[1], 1, act),
                                   DMGroup(n, ch[1], ch[2], 2, act),
                                   DMGroup(n, ch[2], ch[3], 2, act))
        self.batchnorm, self.relu = nn.BatchNorm2d(ch[3]), act()
        self.logits = nn.Linear(ch[3], num_classes)

    def forward(self, x):
        out = self.layer(self.init_conv((x - self.m) / self.s))
        return self.logits(F.avg_pool2d(self.relu(self.batchnorm(out)), 8).flatten(1))


class TradesBlock(nn.Module):
    def __init__(self, cin, cout, stride) -> None:
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(cout), nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        a = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(a))))
        return out + (x if self.equal else self.convShortcut(a))


class TradesGroup(nn.Module):
    def __init__(self, n, cin, cout, stride) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[TradesBlock(cin if i == 0 else cout, cout,
                                                 stride if i == 0 else 1) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class TradesWRN(nn.Module):
    """TRADES-style: conv1, block1..3.layer.i.*, bn1, fc; symmetric padding; no normalisation."""

    def __init__(self, depth, width, num_classes=10) -> None:
        super().__init__()
        n, ch = (depth - 4) // 6, [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.block1, self.block2 = TradesGroup(n, ch[0], ch[1], 1), TradesGroup(n, ch[1], ch[2], 2)
        self.block3 = TradesGroup(n, ch[2], ch[3], 2)
        self.bn1, self.relu = nn.BatchNorm2d(ch[3]), nn.ReLU()
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(F.avg_pool2d(self.relu(self.bn1(out)), 8).flatten(1))


class Normaliser(nn.Module):
    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    _randomise_bn(model, gen)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen))
    return model.eval()


def _probe() -> torch.Tensor:
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _prefixed(state: dict, prefix: str) -> OrderedDict:
    return OrderedDict((prefix + k, v) for k, v in state.items())


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


# -- layouts --------------------------------------------------------------------------------------
def _dm_pair(seed=0, depth=16, width=2):
    return _randomise(DMWRN(depth, width), seed), _randomise(DMWRN(depth, width), seed + 7)


def write_dm(path: Path):
    """DM-Improves-AT train-wa.py: DataParallel(Sequential(wrn)) → module.0.*, WA + raw."""
    avg, raw = _dm_pair()
    torch.save({"model_state_dict": _prefixed(avg.state_dict(), "module.0."),
                "unaveraged_model_state_dict": _prefixed(raw.state_dict(), "module.0.")}, path)
    return avg, "dm"


def write_llnl(path: Path):
    """LLNL train_wa_distributed.py without DDP: Sequential(wrn) → 0.*, with the resume state."""
    avg, raw = _dm_pair(1)
    opt = torch.optim.SGD(raw.parameters(), lr=0.1, momentum=0.9)
    torch.save({"model_state_dict": _prefixed(avg.state_dict(), "0."),
                "unaveraged_model_state_dict": _prefixed(raw.state_dict(), "0."),
                "optimizer_state_dict": opt.state_dict(), "epoch": 3}, path)
    return avg, "llnl"


def write_rade(path: Path):
    """HAT's trainer: {'model_state_dict': DataParallel(Sequential(wrn))}."""
    model = _randomise(DMWRN(16, 2), 2)
    torch.save({"model_state_dict": _prefixed(model.state_dict(), "module.0.")}, path)
    return model, "rade"


def write_robustbench(path: Path):
    """RobustBench: {'state_dict': module.*} of a DeepMind-style WRN."""
    model = _randomise(DMWRN(16, 2), 3)
    torch.save({"state_dict": _prefixed(model.state_dict(), "module.")}, path)
    return model, "robustbench"


def write_robustbench_trades(path: Path):
    """RobustBench's TRADES-style WRN-16-2 (Carmon et al.'s kind): a bare state dict."""
    model = _randomise(TradesWRN(16, 2), 4)
    torch.save(model.state_dict(), path)
    return model, "robustbench"


def write_timm_adv(path: Path):
    """timm-adv-training: Sequential(normalize=ImageNormalizer, model=timm WRN), EMA copy, args."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    model = nn.Sequential(OrderedDict([("normalize", Normaliser(mean, std)),
                                       ("model", _randomise(TradesWRN(16, 2), 5))])).eval()
    ema = nn.Sequential(OrderedDict([("normalize", Normaliser(mean, std)),
                                     ("model", _randomise(TradesWRN(16, 2), 6))])).eval()
    torch.save({"epoch": 1, "arch": "wide_resnet16_2", "state_dict": model.state_dict(),
                "state_dict_ema": ema.state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    return ema, "timm-adv"


def write_timm_adv_dm(path: Path):
    """timm-adv-training's *_dm WRN (no normalisation inside) behind the normaliser."""
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    model = nn.Sequential(OrderedDict([("normalize", Normaliser(mean, std)),
                                       ("model", _randomise(DMWRN(10, 1, normalise=False), 8))]))
    torch.save({"model": model.state_dict()}, path)
    return model.eval(), "timm-adv"


LAYOUTS = [write_dm, write_llnl, write_rade, write_robustbench, write_robustbench_trades,
           write_timm_adv, write_timm_adv_dm]


@pytest.mark.parametrize("writer", LAYOUTS, ids=lambda f: f.__name__[6:])
def test_each_layout_imports_to_the_same_logits(writer, tmp_path):
    src = tmp_path / "source.pt"
    ref, fmt = writer(src)
    out, meta = import_checkpoint(src, tmp_path / "out.safetensors")
    assert meta["source_format"] == fmt
    model, loaded = load_for_eval(out)
    with torch.no_grad():
        d = _maxdiff(model(_probe()), ref(_probe()))
    print(f"\n{writer.__name__[6:]}: {meta['model']} max|Δlogits| {d:.2e}")
    assert d <= TOL
    assert loaded["source_sha256"] and loaded["model"].startswith("wrn-")
    on_the_fly, fly_meta = load_for_eval(src)  # the source file directly
    with torch.no_grad():
        assert _maxdiff(on_the_fly(_probe()), ref(_probe())) <= TOL
    assert {k: v for k, v in fly_meta.items() if not k.startswith("checkpoint_")} == \
        {k: v for k, v in loaded.items() if not k.startswith("checkpoint_")}


def test_forced_format_and_unaveraged_weights(tmp_path):
    src = tmp_path / "weights-best.pt"
    avg, raw = _dm_pair()
    torch.save({"model_state_dict": _prefixed(avg.state_dict(), "module.0."),
                "unaveraged_model_state_dict": _prefixed(raw.state_dict(), "module.0.")}, src)
    imp = import_state(src, format="llnl", weights="unaveraged")
    assert imp.meta["source_format"] == "llnl" and imp.meta["ema"] is False
    assert torch.equal(imp.state["stem.weight"], raw.init_conv.weight)
    assert import_state(src).meta["ema"] is True
    assert import_state(src).meta["activation"] == "silu"
    assert "weights do not say" in import_state(src).meta["activation_source"]
    assert import_state(src, activation="relu").meta["activation"] == "relu"


def test_dm_normalize_true_composes_two_normalisations(tmp_path):
    """DM repos' --normalize True: Sequential(Normalization(data std), wrn) → module.1.*"""
    wrn = _randomise(DMWRN(10, 1), 9)
    src = tmp_path / "n.pt"
    torch.save({"model_state_dict": _prefixed(wrn.state_dict(), "module.1.")}, src)
    model, meta = load_for_eval(src)
    m, d = torch.tensor(C10_MEAN).view(1, 3, 1, 1), torch.tensor(DM_DATA_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = wrn((_probe() - m) / d)
        assert _maxdiff(model(_probe()), ref) <= TOL


def test_mean_std_differing_from_advscales_are_kept(tmp_path):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.3, 0.4)
    wrn = _randomise(DMWRN(10, 1), 10)
    state = dict(wrn.state_dict(), mean=torch.tensor(mean).view(3, 1, 1),
                 std=torch.tensor(std).view(3, 1, 1))  # RobustBench's persistent buffers
    src = tmp_path / "rb.pt"
    torch.save(state, src)
    model, meta = load_for_eval(src)
    assert meta["mean"] == pytest.approx(mean) and meta["std"] == pytest.approx(std)
    ref = DMWRN(10, 1, mean=mean, std=std)
    ref.load_state_dict(wrn.state_dict())
    with torch.no_grad():
        assert _maxdiff(model(_probe()), ref.eval()(_probe())) <= TOL


def test_safetensors_with_dm_keys_imports(tmp_path):
    wrn = _randomise(DMWRN(10, 1), 11)
    src = tmp_path / "dm.safetensors"
    save_file({k: v.contiguous() for k, v in wrn.state_dict().items()}, str(src))
    model, meta = load_for_eval(src)
    assert meta["source_format"] == "robustbench"
    with torch.no_grad():
        assert _maxdiff(model(_probe()), wrn(_probe())) <= TOL


def test_wrn_28_10_logits(tmp_path):
    """One full-size check (WRN-28-10, 36M parameters)."""
    ref = _randomise(DMWRN(28, 10), 12)
    src = tmp_path / "big.pt"
    torch.save({"model_state_dict": _prefixed(ref.state_dict(), "module.0.")}, src)
    model, meta = load_for_eval(src)
    assert meta["model"] == "wrn-28-10" and meta["params"] == 36_479_194
    with torch.no_grad():
        d = _maxdiff(model(_probe()[:2]), ref(_probe()[:2]))
    print(f"\nWRN-28-10: max|Δlogits| {d:.2e}")
    assert d <= TOL


# -- errors ----------------------------------------------------------------------------------------
class NotAllowed:  # a class the safe unpickler must refuse
    pass


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = _randomise(DMWRN(10, 1), 0).state_dict()
    files = {}
    p = tmp_path / "code.pt"
    torch.save({"model_state_dict": good, "extra": NotAllowed()}, p)
    files["code"] = (p, "needs code unpickling")
    p = tmp_path / "missing.pt"
    torch.save({"state_dict": {k: v for k, v in good.items() if "block.0.conv_1" not in k}}, p)
    files["missing"] = (p, "missing")
    p = tmp_path / "extra.pt"
    torch.save(dict(good, **{"head.weight": torch.zeros(3)}), p)
    files["extra"] = (p, "extra key")
    p = tmp_path / "shapes.pt"
    bad = dict(good)
    bad["layer.1.block.0.conv_1.weight"] = torch.zeros(32, 32, 5, 5)
    torch.save(bad, p)
    files["shapes"] = (p, "shapes fit no WRN")
    p = tmp_path / "notes.pt"
    p.write_text("not a checkpoint at all\n")
    files["junk"] = (p, "not a checkpoint")
    return files


@pytest.mark.parametrize("case", ["code", "missing", "extra", "shapes", "junk"])
def test_bad_sources_give_one_error_line_and_no_file(case, tmp_path):
    src, needle = _bad_files(tmp_path)[case]
    out = tmp_path / "out.safetensors"
    with pytest.raises(AdvscaleError) as e:
        import_checkpoint(src, out)
    assert needle in str(e.value) and "\n" not in str(e.value) and str(src) in str(e.value)
    assert not out.exists()
    result = CliRunner().invoke(app, ["model", "import", str(src), "-o", str(out)])
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and needle in lines[0], result.stderr
    assert not out.exists()


def test_unknown_format_lists_what_it_looked_for(tmp_path):
    src = tmp_path / "odd.pt"
    torch.save({"weights": [1, 2, 3]}, src)
    with pytest.raises(AdvscaleError, match="looked for 'model_state_dict'"):
        import_state(src)


def test_arch_mismatch_is_an_error(tmp_path):
    src = tmp_path / "a.pt"
    write_rade(src)
    assert import_state(src, arch="wrn-16-2").meta["model"] == "wrn-16-2"
    with pytest.raises(AdvscaleError, match="holds a wrn-16-2"):
        import_state(src, arch="wrn-70-16")


# -- the CLI ---------------------------------------------------------------------------------------
def test_cli_import_and_info(tmp_path):
    src = tmp_path / "weights-best.pt"
    write_dm(src)
    out = tmp_path / "m.safetensors"
    r = CliRunner().invoke(app, ["model", "import", str(src), "-o", str(out), "--format", "auto"])
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["model"] == "wrn-16-2" and rec["source"]["format"] == "dm"
    r = CliRunner().invoke(app, ["model", "info", str(out)])
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["kind"] == "model.info" and info["model"] == "wrn-16-2"
    assert info["ema"] is True and info["padding"] == "dm" and info["activation"] == "silu"
    assert info["params"] > 0 and info["source"]["format"] == "dm"
    r = CliRunner().invoke(app, ["model", "info", str(src)])  # the source itself
    assert r.exit_code == 0 and json.loads(r.stdout)["model"] == "wrn-16-2"
    assert read_checkpoint_metadata(out)["source_sha256"] == info["source"]["sha256"]


# -- advscale attack on the source file = on the converted file ------------------------------------
def test_attack_on_source_equals_attack_on_converted(tiny_h5, tmp_path):
    from advscale.records import loads_all

    src = tmp_path / "weights-best.pt"
    write_dm(src)
    out = tmp_path / "converted.safetensors"
    import_checkpoint(src, out)
    args = ["--data", str(tiny_h5), "--attack", "pgd-cw", "--eps", "2/255", "--steps", "3",
            "--n", "12", "--chunk-size", "4", "--batch-size", "4", "--device", "cpu"]
    recs = []
    for ckpt in (src, out):
        r = CliRunner().invoke(app, ["attack", str(ckpt), *args])
        assert r.exit_code == 0, r.stderr
        recs.append(loads_all(r.stdout, "stdout"))
    # the checkpoint hash fields (settings_key hashes the checkpoint hash with the settings)
    skip = ("provenance", "wall_s", "checkpoint", "checkpoint_sha256", "checkpoint_path",
            "settings_key")

    def strip(rec: dict) -> dict:
        return {k: v for k, v in rec.items() if k not in skip}

    assert len(recs[0]) == len(recs[1]) >= 1
    for a, b in zip(recs[0], recs[1], strict=True):
        diff = {k for k in set(strip(a)) | set(strip(b)) if a.get(k) != b.get(k)}
        assert not diff, {k: (a.get(k), b.get(k)) for k in diff}
    assert recs[0][-1]["model"] == "wrn-16-2"


def test_import_says_what_it_dropped_and_why(tmp_path):
    """RobustBench's TRADES-style WRN carries an unused sub_block1: the import names it."""
    import subprocess
    import sys

    src = tmp_path / "trades.pt"
    model, _ = write_robustbench_trades(src)
    state = model.state_dict()
    state.update({"sub_" + k: v.clone() for k, v in state.items() if k.startswith("block1.")})
    torch.save(state, src)
    p = subprocess.run([sys.executable, "-m", "advscale", "model", "import", str(src), "-o",
                        str(tmp_path / "out.safetensors")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "dropped sub_block1." in p.stderr and "never called in its forward" in p.stderr
    assert json.loads(p.stdout)["source"]["dropped_keys"][0].startswith("sub_block1.")
