"""The attack registry (issue 23): every registered attack runs, under every threat model it
declares, on a tiny model; a new attack is one file that shows up in ``--help`` and runs end to
end; the evaluation service decides robustness for every attack; AutoAttack and PGD report
progress on stderr (issue 29)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HANG_GUARD_S, make_h5
from torch import nn

from advscale.attacks.registry import AttackSpec, RawOutcome, attack_names, get_attack
from advscale.attacks.settings import AttackSettings
from advscale.errors import AdvscaleError
from advscale.records import loads_all

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PLUGINS = Path(__file__).parent / "plugins"
CASES = [(name, norm) for name in attack_names() for norm in get_attack(name).norms]
EPS = {"linf": 8 / 255, "l2": 0.25}


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, 10)).eval().requires_grad_(False)


def tiny_chunk(model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 8, 8, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    labels = model(x).argmax(1).numpy().copy()
    labels[:2] = (labels[:2] + 1) % 10  # two clean-misclassified images
    return images, labels


@pytest.mark.parametrize(("name", "norm"), CASES, ids=[f"{a}-{n}" for a, n in CASES])
def test_every_registered_attack_runs(name, norm):
    from advscale.attacks.chunks import attack_chunk

    spec = get_attack(name)
    model = tiny_net()
    images, labels = tiny_chunk(model)
    s = AttackSettings(attack=name, norm=norm, eps=EPS[norm], n=8, batch_size=4, chunk_size=8,
                       steps=None if spec.steps is None else 2).resolved(8)
    res = attack_chunk(model, images, labels, s, 0, "cpu")
    x = images.astype(np.float32) / 255
    delta = (res.x_adv - x).reshape(8, -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert size.max() <= EPS[norm] + 1e-4 and 0 <= res.x_adv.min() and res.x_adv.max() <= 1
    clean_ok = res.pred_clean == labels
    assert np.array_equal(res.robust, clean_ok & (res.pred_adv == labels))
    assert res.robust_correct <= res.clean_correct == 6
    assert list(res.per_attack_robust)[0] == "clean"
    assert list(res.per_attack_robust.values())[-1] == res.robust_correct
    assert [b == "clean" for b in res.broken_by] == list(~clean_ok)
    assert np.array_equal(res.x_adv[:2], x[:2]), "clean-misclassified images stay clean"


def test_service_decides_robustness_whatever_the_runner_says():
    """A runner that claims every image is classified correctly after its attack: the service
    still counts the clean-misclassified ones as not robust (robust = clean ∧ attacked)."""
    from advscale.attacks import registry
    from advscale.attacks.chunks import attack_chunk

    def liar(job):
        y = job.y.cpu().numpy()
        with torch.no_grad():
            pred = job.model(job.x).argmax(1).cpu().numpy()
        return RawOutcome(pred, y.copy(), job.x)

    registry.register_attack(AttackSpec("liar-test", liar))
    try:
        model = tiny_net()
        images, labels = tiny_chunk(model)
        s = AttackSettings(attack="liar-test", n=8, chunk_size=8).resolved(8)
        res = attack_chunk(model, images, labels, s, 0, "cpu")
        assert res.robust.tolist() == [False, False] + [True] * 6
        assert res.per_attack_robust == {"clean": 6, "liar-test": 6}
    finally:
        registry._REGISTRY.pop("liar-test")


def test_settings_errors_name_fields():
    cases = [(dict(attack="pgd-cw", norm="l1"), "norm"), (dict(attack="fgsmm"), "attack"),
             (dict(attack="pgd-cw", norm="l2", eps=100.0), "eps"),
             (dict(attack="aa-standard", steps=3), "steps"),
             (dict(attack="apgd-ce", step_size=0.1), "step_size")]
    for kw, field in cases:
        with pytest.raises(AdvscaleError) as e:
            AttackSettings(**kw).resolved(10)
        assert e.value.field == field and "--" not in str(e.value), kw


# -- the CLI: a plugin attack, progress lines ----------------------------------------------------
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    from advscale.models import create_model
    from advscale.models.checkpoint import save_model_checkpoint

    d = tmp_path_factory.mktemp("registry_cli")
    torch.manual_seed(0)
    ckpt = d / "last.safetensors"
    save_model_checkpoint(ckpt, create_model("wrn-10-1"),
                          {"model": "wrn-10-1", "run_id": "r", "samples_seen": 0})
    return ckpt, make_h5(d / "test.h5", 16)


def run_cli(*args: str, plugins: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if plugins:
        env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), env.get("PYTHONPATH", "")])
        env["ADVSCALE_ATTACK_MODULES"] = "fgsm_attack"
    return subprocess.run([sys.executable, "-m", "advscale", "attack", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=HANG_GUARD_S)


def test_attack_from_one_file_in_help_and_end_to_end(cli_files):
    ckpt, h5 = cli_files
    help_ = run_cli("--help", plugins=True)
    assert help_.returncode == 0 and "fgsm" in help_.stdout
    assert "fgsm" not in run_cli("--help").stdout
    for extra in ([], ["--norm", "l2", "--eps", "0.5"]):
        p = run_cli(ckpt, "--data", h5, "--attack", "fgsm", "--n", "8", "--device", "cpu",
                    *extra, plugins=True)
        assert p.returncode == 0, p.stderr
        (rec,) = loads_all(p.stdout, "stdout")
        assert rec["attack"] == "fgsm" and rec["n"] == 8
        assert rec["norm"] == ("l2" if extra else "linf")
        assert rec["robust_correct"] <= rec["clean_correct"]


def test_autoattack_progress_line_per_stage(cli_files):
    """stderr not a terminal: one progress line per AutoAttack stage (images still robust,
    elapsed, ETA); ``-q`` silences them and stdout stays one JSONL record."""
    ckpt, h5 = cli_files
    args = [ckpt, "--data", h5, "--attack", "aa-standard", "--n", "8", "--batch-size", "8",
            "--device", "cpu"]
    p = run_cli(*args)
    assert p.returncode == 0, p.stderr
    assert len(loads_all(p.stdout, "stdout")) == 1
    for k, stage in enumerate(["apgd-ce", "apgd-t", "fab-t", "square"], start=1):
        line = re.search(rf"aa-standard chunk 1/1 stage {k}/4 {stage}: (\d+)/8 still robust, "
                         r"elapsed [\d.]+ s, ETA ~[\d.]+ s", p.stderr)
        assert line, f"no progress line for {stage}:\n{p.stderr}"
    assert re.search(r"chunk 1/1 \(images 0\.\.7\): clean \d+/8, robust \d+/8", p.stderr)
    quiet = run_cli(*args, "-q")
    assert quiet.returncode == 0 and "still robust" not in quiet.stderr
    assert "chunk 1/1" not in quiet.stderr


def test_pgd_progress_line_per_chunk(cli_files):
    ckpt, h5 = cli_files
    p = run_cli(ckpt, "--data", h5, "--attack", "pgd-cw", "--steps", "1", "--n", "16",
                "--chunk-size", "8", "--device", "cpu")
    assert p.returncode == 0, p.stderr
    for c in (1, 2):
        assert re.search(rf"pgd-cw chunk {c}/2 \(images \d+\.\.\d+\): clean \d+/8, robust "
                         r"\d+/8, [\d.]+ s; elapsed [\d.]+ s", p.stderr), p.stderr


def test_registry_and_settings_load_no_torch_and_api_lists_attacks():
    """The registry, the built-in attacks' registration and the settings are torch-free (so
    ``--help`` stays fast); the API's docstring lists the registered attacks."""
    code = ("import sys; from advscale.attacks.registry import attack_names; "
            "from advscale.attacks.settings import AttackSettings; "
            "names = attack_names(); AttackSettings(attack='pgd-cw', norm='l2').resolved(10); "
            "import advscale.api as api; "
            "assert all(n in api.attack.__doc__ for n in names), api.attack.__doc__; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(len(names))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout) == len(attack_names())


@pytest.mark.parametrize("attack", ["pgd-cw", "pgd-ce", "aa-standard", "apgd-ce"])
def test_linf_settings_keys_are_those_before_the_registry(attack):
    """L∞ keys hash exactly what advscale hashed before threat models and the registry (so
    existing --results files keep skipping evaluated checkpoints): written out here."""
    import hashlib
    import json

    from advscale.attacks.settings import settings_key

    s = AttackSettings(attack=attack, n=100).resolved(100)
    doc = {"checkpoint_sha256": "c" * 64, "data_sha256": "d" * 64, "attack": attack,
           "eps": round(8 / 255, 12), "steps": {"pgd-cw": 40, "pgd-ce": 40, "apgd-ce": 100}.get(
               attack), "step_size": round(2 / 255, 12) if attack.startswith("pgd") else None,
           "n": 100, "batch_size": 250, "chunk_size": 1000, "seed": 0, "package": "p",
           "package_version": "v"}
    if attack.startswith("pgd"):
        doc["pgd_start"] = "image-sha256-v1"
    if attack == "pgd-cw":
        doc["pgd_loss"] = "cw-clamped-v1"
    old = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    assert settings_key("c" * 64, "d" * 64, s, "p", "v") == old
    l2 = AttackSettings(attack=attack, n=100, norm="l2").resolved(100)
    assert settings_key("c" * 64, "d" * 64, l2, "p", "v") != old
