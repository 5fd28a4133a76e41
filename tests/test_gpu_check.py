"""The GPU check's CPU mode runs every stage at toy sizes (so the GPU script never rots)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_tiny_cpu(tmp_path):
    """Every stage runs to its end (tiny mode has no wall-clock caps); what ran is asserted,
    never how long it took, so a busy machine cannot fail it."""
    out = tmp_path / "gc.json"
    p = subprocess.run([str(ROOT / "bin" / "advscale-gpu-check"), "--device", "cpu", "--tiny",
                        "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    st = res["stages"]
    assert res["budget_s"] is None and "no cap" in p.stderr
    eager = st["throughput"]["runs"][0]
    assert eager["advscale_images_per_s"] > 0 and eager["plain_images_per_s"] > 0
    # steady state: warmed-up loops, per-step spread, one-time work reported apart
    assert eager["advscale_step"]["steps"] == eager["steps"] - eager["warmup_steps"]
    assert eager["advscale_step"]["p10_s"] <= eager["advscale_step"]["p90_s"]
    assert set(eager["one_time_s"]) == {"advscale_setup", "advscale_eval_checkpoint",
                                        "advscale_first_step", "plain_first_step"}
    assert st["short-run"]["exit_code"] == 0 and st["short-run"]["energy_basis"]
    assert all(st["attack"][k]["exit_code"] == 0 for k in ("pgd-cw", "apgd-ce"))
    assert st["ddp"]["exit_code"] == 0 and st["ddp"]["backend"] == "gloo"
    assert st["generate"]["exit_code"] == 0 and st["generate"]["images_per_s"] > 0
    assert "advscale GPU check" in p.stderr


def test_gpu_mode_refuses_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "advscale-gpu-check: error: no CUDA GPU" in p.stderr
