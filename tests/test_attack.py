"""advscale attack: AutoAttack adapter, PGD baselines, ordering of attacks, adversarial file."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
from conftest import HANG_GUARD_S
from typer.testing import CliRunner

from advscale.attacks.settings import AttackSettings
from advscale.errors import AdvscaleError
from advscale.records import loads_all

EPS = "1/255"  # the tiny test model is only robust at small radii


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def invoke(*args: str):
    from advscale.cli.main import app

    return CliRunner().invoke(app, ["attack", *args])


def records(result) -> list[dict]:
    assert result.exit_code == 0, result.stderr
    return loads_all(result.stdout, "stdout")  # stdout is nothing but JSONL


def confident_subset(ckpt, test_h5, path, n_right: int = 3, n_wrong: int = 1):
    """A small test file (file order kept) of CIFAR test images: the ``n_right`` the model
    classifies correctly with the largest margin among the first 200, and ``n_wrong`` it gets
    wrong, so a weak model still has images that survive an attack at a small radius."""
    import h5py
    import torch

    from advscale.attacks.pgd import cw_margin
    from advscale.data import CIFAR10_CLASSES
    from advscale.data.layout import ImageFileWriter
    from advscale.models.checkpoint import load_for_eval

    model, _ = load_for_eval(ckpt)
    with h5py.File(test_h5, "r") as f:
        img, lab = f["image"][:200], f["label"][:200].astype(np.int64)
    with torch.no_grad():
        x = torch.from_numpy(img).permute(0, 3, 1, 2).float().div(255).contiguous()
        margin = -cw_margin(model(x), torch.from_numpy(lab)).numpy()  # > 0: correct
    right = [i for i in np.argsort(-margin) if margin[i] > 0][:n_right]
    wrong = [i for i in range(200) if margin[i] < 0][:n_wrong]
    rows = np.sort(np.array(right + wrong))
    with ImageFileWriter(path, len(rows), source="test", class_names=CIFAR10_CLASSES) as w:
        w.write(img[rows], lab[rows])
    return path


@pytest.mark.slow
def test_ordering_aa_standard_apgd_pgd_clean(tiny_ckpt, cifar_h5, tmp_path):
    """robust(AA standard) <= robust(APGD-CE) and robust(PGD-CW-40) <= clean, on real AA."""
    data = confident_subset(tiny_ckpt, cifar_h5["test"], tmp_path / "subset.h5")
    common = ["--data", str(data), "--eps", EPS, "--batch-size", "4", "--device", "cpu",
              "--verbose"]
    adv = tmp_path / "aa.h5"
    aa = records(invoke(str(tiny_ckpt), "--attack", "aa-standard", "--save-adv", str(adv),
                        *common))[0]
    apgd = records(invoke(str(tiny_ckpt), "--attack", "apgd-ce", *common))[0]
    pgd = records(invoke(str(tiny_ckpt), "--attack", "pgd-cw", *common))[0]

    assert aa["package"] == "pyautoattack" and aa["package_version"].startswith("0.2")
    assert pgd["package"] == "advscale" and pgd["steps"] == 40
    assert pgd["step_size"] == pytest.approx(2 / 255)
    assert aa["clean_acc"] == apgd["clean_acc"] == pgd["clean_acc"] > 0
    assert apgd["robust_acc"] > 0, "test model should keep some robustness at eps 1/255"
    assert aa["robust_acc"] <= apgd["robust_acc"]
    assert pgd["robust_acc"] <= pgd["clean_acc"]
    # the AA cascade: its first stage is exactly APGD-CE with the same seed and batches
    pa = aa["per_attack_robust"]
    assert list(pa) == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert pa["apgd-ce"] == apgd["per_attack_robust"]["apgd-ce"]
    counts = list(pa.values())
    assert counts == sorted(counts, reverse=True)
    assert counts[-1] == aa["robust_correct"] == round(aa["robust_acc"] * 4)
    assert aa["clean_correct"] == 3
    for r in (aa, apgd, pgd):
        assert r["kind"] == "attack" and r["n"] == 4 and r["batch_size"] == 4
        assert r["eps"] == pytest.approx(1 / 255) and r["seed"] == 0
        assert r["run_id"] == "tiny" and r["model"] == "wrn-10-1" and r["params"] == 77850
        assert len(r["checkpoint_sha256"]) == 64 and r["samples_seen"] == 2560
        assert r["wall_s"] > 0

    check_adv_file(adv, tiny_ckpt, data, aa, 1 / 255)


def check_adv_file(path, ckpt, test_h5, record, eps):
    """The adversarial-image file matches the record, the data and the model."""
    import h5py
    import torch

    from advscale.attacks.advfile import read_adv_file
    from advscale.models.checkpoint import load_for_eval

    d = read_adv_file(path)
    n = record["n"]
    assert d["index"].dtype == np.int64 and list(d["index"]) == list(range(n))
    assert d["image_clean"].dtype == np.uint8 and d["image_clean"].shape == (n, 32, 32, 3)
    assert d["image_adv"].dtype == np.float32 and d["image_adv"].shape == (n, 32, 32, 3)
    assert d["success"].dtype == bool
    with h5py.File(test_h5, "r") as f:
        assert np.array_equal(d["image_clean"], f["image"][:n])
        assert np.array_equal(d["label"], f["label"][:n].astype(np.int64))
    dist = np.abs(d["image_adv"] - d["image_clean"] / 255.0).max()
    assert dist <= eps + 1e-5 and d["image_adv"].min() >= 0 and d["image_adv"].max() <= 1
    assert np.array_equal(d["success"], d["pred_adv"] != d["label"])
    assert int((~d["success"]).sum()) == record["robust_correct"]
    assert int((d["pred_clean"] == d["label"]).sum()) == record["clean_correct"]
    stages = set(record["per_attack_robust"]) - {"clean"}
    for name, ok, pc, y in zip(d["attack"], d["success"], d["pred_clean"], d["label"],
                               strict=True):
        if pc != y:
            assert name == "clean" and ok
        else:
            assert (name in stages) if ok else name == ""
    a = d["attrs"]
    assert a["format_version"] == 1 and a["kind"] == "advscale-adversarial"
    assert a["checkpoint_sha256"] == record["checkpoint_sha256"] and a["model"] == "wrn-10-1"
    assert len(a["class_names"]) == 10 and a["eps"] == pytest.approx(eps)
    assert a["attack_settings"]["attack"] == record["attack"]
    # the float32 adversarial images really fool the model where the file says so
    model, _ = load_for_eval(ckpt)
    with torch.no_grad():
        x = torch.from_numpy(d["image_adv"]).permute(0, 3, 1, 2).contiguous()
        pred = model(x).argmax(1).numpy()
    assert np.array_equal(pred, d["pred_adv"])


def test_pgd_reproducible_and_file(tiny_ckpt, cifar_h5, tmp_path):
    """--seed reproduces a run (same batch size): records and adversarial images match."""
    args = [str(tiny_ckpt), "--data", str(cifar_h5["test"]), "--attack", "pgd-ce", "--eps",
            EPS, "--steps", "3", "--n", "24", "--batch-size", "8", "--chunk-size", "12",
            "--seed", "5", "--device", "cpu"]
    r1 = records(invoke(*args, "--save-adv", str(tmp_path / "a.h5")))[0]
    r2 = records(invoke(*args, "--save-adv", str(tmp_path / "b.h5")))[0]
    strip = lambda r: {k: v for k, v in r.items() if k not in ("provenance", "wall_s")}  # noqa: E731
    assert strip(r1) == strip(r2)
    assert r1["chunks"] == 2 and r1["seed"] == 5 and r1["step_size"] == pytest.approx(2 / 255)
    from advscale.attacks.advfile import read_adv_file

    a, b = read_adv_file(tmp_path / "a.h5"), read_adv_file(tmp_path / "b.h5")
    assert np.array_equal(a["image_adv"], b["image_adv"])
    check_adv_file(tmp_path / "a.h5", tiny_ckpt, cifar_h5["test"], r1, 1 / 255)


def test_train_eval_and_attack_pgd_cw_agree(tiny_ckpt, cifar_h5):
    """One evaluation service: `train`'s evaluation (sharded, any batch size, channels-last)
    and `attack --attack pgd-cw` (chunked, other batch size) on the same checkpoint, images,
    eps, steps and seed give the same clean/robust accuracy and adversarial loss."""
    import torch

    from advscale.attacks.evaluate import attack_checkpoints
    from advscale.attacks.inputs import load_test_data
    from advscale.attacks.robustness import RobustnessResult, robustness_sums
    from advscale.models.checkpoint import load_for_eval
    from advscale.training.evaluate import evaluate_robustness

    n, eps, steps, seed = 30, 3 / 255, 3, 7
    settings = AttackSettings(attack="pgd-cw", eps=eps, steps=steps, n=n, batch_size=4,
                              chunk_size=11, seed=seed)
    (rec,) = attack_checkpoints([tiny_ckpt], cifar_h5["test"], settings, device="cpu",
                                log=lambda _: None)
    data = load_test_data(cifar_h5["test"], n)
    model, _ = load_for_eval(tiny_ckpt)
    common = dict(eps=eps, step_size=2 / 255, steps=steps, seed=seed)
    ev = evaluate_robustness(model, data.images, data.labels, batch_size=7, **common)
    ev_cl = evaluate_robustness(model, data.images, data.labels, batch_size=16,
                                channels_last=True, **common)
    # two "ranks" taking alternate batches, summed as the all-reduce does
    shards = [robustness_sums(model, data.images, data.labels, batch_size=6,
                              batches=range(r, 5, 2), **common) for r in (0, 1)]
    ev_ddp = RobustnessResult.from_sums(torch.stack(shards).sum(0))

    assert rec["n"] == ev.n == n and rec["adv_loss"] is not None
    assert 0 < rec["robust_acc"] < rec["clean_acc"], "the check needs a non-trivial outcome"
    for other in (ev, ev_cl, ev_ddp):
        assert other.clean_acc == pytest.approx(rec["clean_acc"], abs=1e-12)
        assert other.robust_acc == pytest.approx(rec["robust_acc"], abs=1e-12)
        assert other.adv_loss == pytest.approx(rec["adv_loss"], rel=1e-5)


def test_start_noise_depends_on_seed_and_index_only():
    from advscale.attacks.robustness import start_noise, start_seed

    whole = start_noise(3, 0, 6, (3, 4, 4))
    assert whole.shape == (6, 3, 4, 4) and 0 <= whole.min() and whole.max() < 1
    assert np.array_equal(start_noise(3, 2, 3, (3, 4, 4)).numpy(), whole[2:5].numpy())
    assert not np.array_equal(start_noise(4, 0, 6, (3, 4, 4)).numpy(), whole.numpy())
    assert start_seed(0, 1) != start_seed(1, 0) and 0 <= start_seed(5, 9) < 2**32


def test_settings_validation():
    ok = AttackSettings(attack="pgd-cw", eps=8 / 255).resolved(available=500)
    assert (ok.steps, ok.n, ok.step_size) == (40, 500, pytest.approx(2 / 255))
    assert AttackSettings(attack="apgd-ce").resolved(20000).steps == 100
    assert AttackSettings().resolved(20000).n == 10_000
    assert AttackSettings(chunk_size=300).resolved(1000).chunks == 4
    assert AttackSettings(seed=7, chunk_size=10).resolved(100).chunk_seed(3) == 10
    bad = [dict(attack="fgsm"), dict(eps=-1.0), dict(eps=0.0), dict(eps=2.0),
           dict(eps=float("nan")), dict(attack="aa-standard", steps=10),
           dict(attack="apgd-ce", step_size=0.01), dict(attack="pgd-cw", steps=0),
           dict(n=0), dict(n=501), dict(batch_size=0), dict(chunk_size=0), dict(seed=-1)]
    for kw in bad:
        with pytest.raises(AdvscaleError):
            AttackSettings(**kw).resolved(available=500)


def test_pgd_cw_is_clamped_and_margin_has_its_own_name():
    """pgd-cw maximises the reference's clamped CW loss; the unclamped margin is pgd-cw-margin,
    and the two (and the old unclamped pgd-cw) never share a settings key."""
    from advscale.attacks.catalog.pgd import PGD_ATTACKS
    from advscale.attacks.settings import settings_key

    assert PGD_ATTACKS["pgd-cw"] == "cw" and PGD_ATTACKS["pgd-cw-margin"] == "cw-margin"
    s = {a: AttackSettings(attack=a).resolved(100) for a in ("pgd-cw", "pgd-cw-margin")}
    assert s["pgd-cw-margin"].steps == 40
    keys = {a: settings_key("c", "d", v, "advscale", "x") for a, v in s.items()}
    assert keys["pgd-cw"] != keys["pgd-cw-margin"]


FAKE_OFFICIAL = '''
"""A stand-in for the official fra31 package: its argument names, prints and warnings."""
import sys, types, warnings
import torch
import torch.nn.functional as F

__version__ = "0.1-fake"
CALLS = []


class AutoAttack:
    def __init__(self, model, norm="Linf", eps=0.3, seed=None, verbose=True,
                 attacks_to_run=[], version="standard", is_tf_model=False, device="cuda",
                 log_path=None):
        CALLS.append(dict(init=True, norm=norm, eps=eps, seed=seed, version=version,
                          device=str(device)))
        self.model, self.epsilon, self.verbose = model, eps, verbose
        self.attacks_to_run = (["apgd-ce", "apgd-t", "fab-t", "square"]
                               if version == "standard" else list(attacks_to_run))
        self.apgd = types.SimpleNamespace(n_iter=100)
        print("setting parameters for standard version")

    def run_standard_evaluation(self, x_orig, y_orig, bs=250, return_labels=False):
        print("using standard version including " + ", ".join(self.attacks_to_run))
        warnings.warn("it seems to be a randomized defense! (fake warning)")
        CALLS.append(dict(bs=bs, return_labels=return_labels, n=len(x_orig),
                          attacks=list(self.attacks_to_run), seed=torch.initial_seed()))
        x = x_orig.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(self.model(x), y_orig), x)
        x_adv = (x_orig + self.epsilon * g.sign()).clamp(0, 1).detach()
        with torch.no_grad():
            y_adv = self.model(x_adv).argmax(1)
        keep = y_adv == y_orig
        x_adv[keep] = x_orig[keep]
        print("robust accuracy: {:.2%}".format(keep.float().mean()))
        return (x_adv, y_adv) if return_labels else x_adv
'''


@pytest.fixture
def fake_official(tmp_path, monkeypatch):
    pkg = tmp_path / "fakeaa" / "autoattack"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE_OFFICIAL))
    monkeypatch.syspath_prepend(str(pkg.parent))
    sys.modules.pop("autoattack", None)
    yield pkg.parent
    sys.modules.pop("autoattack", None)


def test_adapter_translates_for_official_package(fake_official, tiny_ckpt, cifar_h5, capsys):
    """The official package is preferred when present; its prints never reach stdout."""
    import h5py
    import torch

    from advscale.attacks.autoattack import AutoAttackRunner, find_backend
    from advscale.attacks.robustness import image_outcomes
    from advscale.models.checkpoint import load_for_eval

    backend = find_backend()
    assert (backend.package, backend.version) == ("autoattack", "0.1-fake")
    assert find_backend("pyautoattack").package == "pyautoattack"
    with pytest.raises(AdvscaleError):
        find_backend("nonesuch")
    model, _ = load_for_eval(tiny_ckpt)
    model.requires_grad_(False)
    with h5py.File(cifar_h5["test"], "r") as f:
        x = torch.from_numpy(f["image"][:32]).permute(0, 3, 1, 2).float() / 255  # NHWC view
        y = torch.from_numpy(f["label"][:32].astype(np.int64))
    runner = AutoAttackRunner(model, "aa-standard", eps=4 / 255, seed=3, device="cpu")
    raw = runner.run(x, y, batch_size=8)
    res = image_outcomes(y.numpy(), raw.pred_clean, raw.pred_adv, raw.stages, raw.broken_stage)
    res.per_attack_robust = res.per_attack
    out = capsys.readouterr()
    assert out.out == "", "AutoAttack's prints must go to stderr"
    assert "setting parameters for standard version" in out.err
    calls = sys.modules["autoattack"].CALLS
    init = calls[0]
    assert init == dict(init=True, norm="Linf", eps=4 / 255, seed=3, version="standard",
                        device="cpu")
    runs = [c for c in calls if "bs" in c]
    assert runs and all(c["bs"] == 8 and c["return_labels"] for c in runs)
    assert all(c["seed"] == 3 for c in runs), "global RNG reseeded before each attack"
    # one attack at a time, each on the images still robust
    assert [c["attacks"] for c in runs] == [[s] for s in runner.stages][: len(runs)]
    assert runs[0]["n"] == res.per_attack_robust["clean"]
    assert all(b["n"] <= a["n"] for a, b in zip(runs, runs[1:], strict=False))
    assert res.robust.sum() == list(res.per_attack_robust.values())[-1]
    broken = [i for i, b in enumerate(res.broken_by) if b not in ("", "clean")]
    assert all(res.pred_adv[i] != y[i] for i in broken)
    assert float((raw.x_adv - x).abs().max()) <= 4 / 255 + 1e-6


def test_official_backend_cli_pipe_stays_jsonl(fake_official, tiny_ckpt, cifar_h5):
    """`advscale attack | reader`: stdout parses as JSONL while AutoAttack prints and warns."""
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake_official),
                                                       os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", PYTHONWARNINGS="always")
    cmd = (f"{sys.executable} -m advscale attack {tiny_ckpt} --data {cifar_h5['test']} "
           f"--attack aa-standard --eps 4/255 --n 16 --batch-size 8 --device cpu --verbose "
           f"| {sys.executable} -c 'import sys, json; "
           f"from advscale.records import read_records; "
           f"print(json.dumps([r[\"package\"] for r in read_records(\"-\")]))'")
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                       env=env, timeout=HANG_GUARD_S)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == ["autoattack"]
    assert "robust accuracy" in p.stderr and "fake warning" in p.stderr
