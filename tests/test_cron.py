"""The cron re-evaluation script evaluates only new checkpoints, refits and rebuilds the report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from advscale.records import append_record, make_record, read_records

SCRIPT = Path(__file__).resolve().parents[1] / "bin" / "advscale-reevaluate"
ADVSCALE = Path(sys.executable).parent / "advscale"


def _run_dir(root: Path, name: str, seed: int) -> Path:
    import torch

    from advscale.models import count_parameters, create_model
    from advscale.models.checkpoint import save_model_checkpoint

    torch.manual_seed(seed)
    model = create_model("wrn-10-1")
    d = root / name
    d.mkdir(parents=True)
    save_model_checkpoint(d / "last.safetensors", model,
                          {"model": "wrn-10-1", "activation": "silu", "num_classes": 10,
                           "run_id": name, "samples_seen": 1000 * (seed + 1)})
    for k in (1, 2):
        seen = 500 * k * (seed + 1)
        append_record(d / "records.jsonl", make_record("train.eval", {
            "run_id": name, "model": "wrn-10-1", "activation": "silu",
            "params": count_parameters(model), "loss": "trades", "beta": 5.0, "pgd_steps": 2,
            "eps": 8 / 255, "ema_decay": 0.999, "batch_size": 64, "lr": 0.1, "step": k,
            "samples_seen": seen, "samples_unique": seen, "data": [], "fid": None,
            "train_flops": 1e11 * k * (seed + 1), "train_flops_per_sample": 2e8,
            "wall_s": 1.0 * k, "train_loss": None, "eval_n": 16, "eval_attack": "pgd-cw-2",
            "clean_acc": 0.2, "robust_acc": 0.1, "adv_loss": 2.5 - 0.1 * k - 0.05 * seed,
            "final": k == 2}))
    return d


@pytest.mark.skipif(not ADVSCALE.exists(), reason="advscale console script not installed")
def test_cron_script_evaluates_only_new_checkpoints(tmp_path, cifar_h5):
    runs, out = tmp_path / "runs", tmp_path / "eval"
    _run_dir(runs, "run-a", 0)
    _run_dir(runs, "run-b", 1)
    env = dict(os.environ, ADVSCALE=str(ADVSCALE), N="16", STEPS="2")
    cmd = ["bash", str(SCRIPT), str(runs), str(cifar_h5["test"]), str(out)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert len(list(read_records(out / "attack.jsonl", kinds=["attack"]))) == 2
    assert (out / "report" / "report.html").is_file()
    assert "could not be fitted yet" in first.stderr  # two runs are too few for Approach 2

    _run_dir(runs, "run-c", 2)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    attacks = list(read_records(out / "attack.jsonl", kinds=["attack"]))
    assert sorted(a["run_id"] for a in attacks) == ["run-a", "run-b", "run-c"]
    assert second.stderr.count("already evaluated") == 2
    records = list(read_records(out / "records.jsonl"))
    assert sum(r["kind"] == "train.eval" for r in records) == 6
    assert "run-c" in (out / "report" / "report.html").read_text()
