"""``advscale train`` tells the truth early: no ``nan`` placeholder in its progress, and a
warning when the budget is only a few optimizer steps (issue 29)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import make_h5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_progress_has_no_nan_and_short_budgets_warn(tmp_path):
    train = make_h5(tmp_path / "train.h5", 96, seed=1)
    test = make_h5(tmp_path / "test.h5", 16, seed=2)
    # stderr is a pipe (not a terminal): plain progress lines, the first at the first step
    p = subprocess.run([sys.executable, "-m", "advscale", "train", "--out", str(tmp_path / "r"),
                        "--data", str(train), "--eval-data", str(test), "--samples", "96",
                        "--model", "wrn-10-1", "--pgd-steps", "1", "--eval-n", "16",
                        "--eval-steps", "1", "--batch-size", "32", "--lr", "0.1"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    progress = [ln for ln in lines if "samples" in ln and " lr " in ln]
    assert progress, p.stderr
    assert "nan" not in p.stderr.lower()
    assert any("only 3 optimizer step(s)" in ln and "cannot complete a cycle" in ln
               for ln in lines), p.stderr
