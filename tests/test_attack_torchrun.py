"""``advscale attack`` under ``torchrun --nproc_per_node=2`` (gloo, CPU): the ranks split the
chunks, each keeps its own resume state, and rank 0's merged record and per-image results equal
a single-process run's."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import HANG_GUARD_S
from typer.testing import CliRunner

from advscale.records import loads_all, read_records

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DROP = ("provenance", "wall_s")  # what legitimately differs between two runs


def self_labelled(tmp_path, n: int, seed: int = 0):
    """A random-init WRN-10-1 checkpoint and ``n`` random images labelled with its own fp32
    predictions (every image clean-correct; the attack decides which stay robust)."""
    import torch

    from advscale.data import CIFAR10_CLASSES
    from advscale.data.layout import ImageFileWriter
    from advscale.models import create_model
    from advscale.models.checkpoint import save_model_checkpoint

    torch.manual_seed(seed)
    model = create_model("wrn-10-1").eval()
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
        labels = model(x).argmax(1).numpy().astype(np.int64)
    ckpt = save_model_checkpoint(tmp_path / "last.safetensors", model,
                                 {"model": "wrn-10-1", "activation": "silu", "num_classes": 10,
                                  "run_id": "toy", "samples_seen": 0})
    data = tmp_path / "test.h5"
    with ImageFileWriter(data, n, source="test", class_names=CIFAR10_CLASSES) as w:
        w.write(images, labels)
    return ckpt, data


def _args(ckpt, test_h5, adv, state):
    return [str(ckpt), "--data", str(test_h5), "--attack", "apgd-ce", "--steps", "2",
            "--eps", "1/255", "--n", "8", "--chunk-size", "2", "--batch-size", "2",
            "--device", "cpu", "--save-adv", str(adv), "--state", str(state)]


def test_torchrun_two_gloo_ranks_equal_one_process(tmp_path):
    from advscale.attacks.advfile import read_adv_file
    from advscale.cli.main import app
    from advscale.records import validate

    ckpt, test_h5 = self_labelled(tmp_path, 8)

    single = CliRunner().invoke(app, ["attack", *_args(ckpt, test_h5,
                                                       tmp_path / "one.h5", tmp_path / "one.st")])
    assert single.exit_code == 0, single.stderr
    [one] = loads_all(single.stdout)
    assert 0 < one["robust_correct"] < one["clean_correct"] == 8  # a non-trivial comparison

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           # "--": torchrun's own parser would read --n as an abbreviation of its options
           "-m", "advscale", "--", "attack", *_args(ckpt, test_h5, tmp_path / "two.h5",
                                              tmp_path / "two.st"),
           "--results", str(tmp_path / "res.jsonl")]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert p.returncode == 0, p.stderr[-3000:]
    [two] = loads_all(p.stdout)  # rank 1 writes nothing to stdout
    validate(two)
    assert {k: v for k, v in two.items() if k not in DROP} == \
        {k: v for k, v in one.items() if k not in DROP}
    assert two["chunks"] == 4 and two["provenance"]["config"]["world_size"] == 2
    assert [r["settings_key"] for r in read_records(tmp_path / "res.jsonl")] == \
        [one["settings_key"]]

    # each rank kept its own resume state: chunks c % 2 == r
    for r in (0, 1):
        st = list(read_records(tmp_path / f"two.st.rank{r}-of-2"))
        assert sorted(x["chunk"] for x in st) == [r, r + 2]
    assert not list(tmp_path.glob("two.h5.rank*"))  # per-rank files merged and removed

    a, b = read_adv_file(tmp_path / "one.h5"), read_adv_file(tmp_path / "two.h5")
    for k in ("index", "label", "pred_clean", "pred_adv", "success"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(a["image_adv"], b["image_adv"])
    assert a["attack"] == b["attack"]
    assert a["attrs"]["attack_settings"] == b["attrs"]["attack_settings"]

    # relaunched: every rank resumes from its own state, nothing is attacked again
    again = [a for a in cmd if a not in ("--save-adv", str(tmp_path / "two.h5"))]
    p = subprocess.run([*again, "--force"], env=env, capture_output=True, text=True,
                       timeout=HANG_GUARD_S)
    assert p.returncode == 0, p.stderr[-3000:]
    [three] = loads_all(p.stdout)
    assert {k: v for k, v in three.items() if k != "provenance"} == \
        {k: v for k, v in two.items() if k != "provenance"}  # wall_s too: the chunks' own
    assert "resuming, 2 of 2 chunks already done" in p.stderr
    assert "chunk 1/4" not in p.stderr  # no chunk attacked

    # and without --force the evaluation is found in --results: printed again, not re-run
    p = subprocess.run(again, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert p.returncode == 0, p.stderr[-3000:]
    [four] = loads_all(p.stdout)
    assert {k: v for k, v in four.items() if k != "provenance"} == \
        {k: v for k, v in two.items() if k != "provenance"}
    assert "already evaluated" in p.stderr


def test_torchrun_needs_a_state_file(monkeypatch, tmp_path, tiny_h5):
    from advscale.attacks.distributed import attack_torchrun
    from advscale.attacks.settings import AttackSettings
    from advscale.errors import AdvscaleError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(AdvscaleError) as e:
        attack_torchrun(["x"], tiny_h5, AttackSettings(attack="apgd-ce"), device="cpu")
    assert e.value.field == "state"
